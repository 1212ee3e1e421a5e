// A shopper in headless Chromium: searches with a typo, filters by a facet, opens a product,
// adds it to the cart as a guest, signs in (the cart comes along), gives an address, checks
// out and sees the order. Screenshots go to $ARTIFACTS. Run by tests/browser.rs.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';

const base = process.env.BASE_URL;
const out = process.env.ARTIFACTS || 'browser-artifacts';
mkdirSync(out, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const problems = [];
page.on('pageerror', (e) => problems.push(e.message));
page.setDefaultTimeout(20000);
try {
  await page.goto(base + '/');
  await page.waitForSelector('#results .hit');

  // A typo still finds lanterns.
  await page.fill('#q', 'lanturn');
  await page.press('#q', 'Enter');
  // Wait for this search's page (the count names the query), not the hash alone: the browse
  // page's hits are still there until the answer is rendered.
  await page.waitForFunction(() => (document.querySelector('#result-count')?.textContent || '').includes('lanturn') &&
    document.querySelectorAll('#results .hit').length > 0);
  const titles = await page.$$eval('#results .hit .title', (els) => els.map((e) => e.textContent));
  assert.ok(titles.some((t) => /lantern/i.test(t)), `lanterns for "lanturn": ${titles}`);
  await page.screenshot({ path: `${out}/search.png`, fullPage: false });

  // A brand facet keeps only that brand, and says how many.
  const brand = await page.$eval('[data-facet="brand"]', (el) => el.value);
  await page.check(`[data-facet="brand"][value="${brand}"]`);
  await page.waitForFunction((b) => location.hash.includes('brand=') &&
    [...document.querySelectorAll('#results .hit .muted')].every((e) => e.textContent === b), brand);

  // The product page.
  await page.click('#results .hit a');
  await page.waitForSelector('#product h1');
  const title = await page.textContent('#product h1');
  assert.match(await page.textContent('#availability'), /in stock/);
  // Similar products by meaning, never the product itself.
  await page.waitForSelector('#similar');
  const similar = await page.$$eval('#similar .title', (els) => els.map((e) => e.textContent));
  assert.ok(similar.length > 0 && !similar.includes(title), `similar: ${similar}`);
  await page.click('#add-to-cart');
  await page.waitForFunction(() => document.querySelector('#cart-count').textContent === '1');
  await page.screenshot({ path: `${out}/product.png`, fullPage: true });

  // Sign in: the guest cart becomes the shopper's.
  await page.click('#sign-in');
  await page.fill('#email', `shopper-${Date.now()}@example.com`);
  await page.click('#sign-in-submit');
  await page.waitForFunction(() => document.querySelector('#who').textContent.includes('@'));
  await page.goto(base + '/#/cart');
  await page.waitForSelector('#cart-lines');
  assert.equal(await page.textContent('#cart-lines tr[data-sku] a'), title);

  // Address, then the order.
  await page.fill('#address-form [name=name]', 'Ada Lovelace');
  await page.fill('#address-form [name=line1]', '12 St James Square');
  await page.fill('#address-form [name=city]', 'London');
  await page.fill('#address-form [name=postal_code]', 'SW1Y 4JH');
  await page.click('#address-form button');
  await page.waitForFunction(() => document.querySelector('#shipping-method')?.textContent.trim().length > 0);
  await page.waitForSelector('#cart-total');
  await page.screenshot({ path: `${out}/cart.png`, fullPage: true });
  await page.click('#checkout');
  await page.waitForSelector('#order-status');
  assert.equal(await page.textContent('#order-status'), 'confirmed');
  await page.screenshot({ path: `${out}/order.png`, fullPage: true });

  // The order is in the list and the cart is empty.
  await page.goto(base + '/#/orders');
  await page.waitForSelector('#order-list li');
  await page.goto(base + '/#/cart');
  await page.waitForSelector('#empty-cart');
  assert.deepEqual(problems, [], 'no script errors');
  console.log('storefront: search, facet, product, cart, sign-in, checkout, order: ok');
} catch (e) {
  await page.screenshot({ path: `${out}/failure.png`, fullPage: true }).catch(() => {});
  throw e;
} finally {
  await browser.close();
}
