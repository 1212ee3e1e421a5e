// The reference storefront: plain JavaScript over the server's JSON API, no build step.
// Routes live in the URL's hash: #/ (search), #/product/SKU, #/cart, #/orders, #/orders/ID.
'use strict';

const $ = (sel) => document.querySelector(sel);
const view = $('#view');
const state = {
  token: localStorage.getItem('token'),
  user: localStorage.getItem('user'),
  session: localStorage.getItem('session') || newId(),
};
localStorage.setItem('session', state.session);

function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

function esc(text) {
  return String(text ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function money(m) {
  if (!m) return '';
  const symbol = { GBP: '£', EUR: '€', USD: '$' }[m.currency] || m.currency + ' ';
  return symbol + m.amount;
}

// Every call: JSON in and out, the bearer token when signed in, the guest cookie always.
async function api(method, path, body, headers = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (body !== undefined) h['Content-Type'] = 'application/json';
  if (state.token) h.Authorization = 'Bearer ' + state.token;
  const res = await fetch(path, {
    method, headers: h, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (res.status === 401 && state.token) signOut();
  if (!res.ok) {
    const err = new Error((data && data.detail) || res.statusText);
    err.status = res.status;
    err.problem = data;
    throw err;
  }
  return data;
}

function alertBox(text, error = false) {
  const a = $('#alert');
  if (!text) { a.hidden = true; return; }
  a.textContent = text;
  a.className = error ? 'error' : '';
  a.hidden = false;
}

function showError(e) {
  alertBox(e.message || String(e), true);
}

function renderWho() {
  $('#who').textContent = state.user ? state.user : '';
  $('#sign-in').hidden = !!state.user;
  $('#sign-out').hidden = !state.user;
}

function signOut() {
  state.token = null;
  state.user = null;
  localStorage.removeItem('token');
  localStorage.removeItem('user');
  renderWho();
}

async function signIn(email) {
  const t = await api('POST', '/auth/login', { email });
  state.token = t.token;
  state.user = t.user;
  localStorage.setItem('token', t.token);
  localStorage.setItem('user', t.user);
  renderWho();
  await refreshCartCount(); // the first cart call merges the guest cart
}

async function refreshCartCount() {
  try {
    const cart = await api('GET', '/cart');
    $('#cart-count').textContent = cart.lines.reduce((n, l) => n + l.quantity, 0);
    return cart;
  } catch (e) { return null; }
}

// ---------- search ----------
function params() {
  const hash = location.hash.slice(1) || '/';
  const [path, query] = hash.split('?');
  return { path, query: new URLSearchParams(query || '') };
}

function go(path, query) {
  const q = query && [...query].length ? '?' + query.toString() : '';
  location.hash = '#' + path + q;
}

async function renderSearch(query, seq = renderSeq) {
  const q = query.get('q') || '';
  $('#q').value = q;
  const res = await api('GET', '/search?' + query.toString());
  if (stale(seq)) return;
  const brands = new Set((query.get('brand') || '').split(',').filter(Boolean));
  const facet = (title, name, values, selected, label = (v) => v) => `
    <h3>${title}</h3>
    ${values.map((f) => `<label><input type="checkbox" data-facet="${name}" value="${esc(f.value)}" ${selected(f.value) ? 'checked' : ''}> ${esc(label(f.value))} <span class="muted">(${f.count})</span></label>`).join('')}`;
  view.innerHTML = `
    <div class="layout">
      <aside class="facets" id="facets">
        ${facet('Brand', 'brand', res.facets.brand, (v) => brands.has(v))}
        ${facet('Category', 'category', res.facets.category, (v) => query.get('category') === v)}
        ${facet('Price', 'price', res.facets.price, (v) => query.get('price') === v, (v) => v.replace(/^-/, 'under ').replace(/-$/, ' and up').replace('-', ' – '))}
        <h3>Rating</h3>
        <label><input type="checkbox" id="rating4" ${query.get('min_rating') === '4' ? 'checked' : ''}> 4 stars and up</label>
      </aside>
      <section>
        <p class="muted" id="result-count">${res.total} products${q ? ` for “${esc(q)}”` : ''}${res.relaxed ? ' (showing partial matches)' : ''}</p>
        <div class="grid" id="results">
          ${res.hits.map((h) => `
            <div class="card hit${h.partial ? ' partial' : ''}" data-sku="${esc(h.sku)}">
              <a href="#/product/${encodeURIComponent(h.sku)}">
                <div class="title">${esc(h.title)}</div>
                <div class="muted">${esc(h.brand || '')}</div>
                <div class="price">${money(h.price)}</div>
                ${h.partial ? '<div class="note">matches some of your words</div>' : ''}
              </a>
            </div>`).join('')}
        </div>
      </section>
    </div>`;
  view.querySelectorAll('[data-facet]').forEach((box) => box.addEventListener('change', () => {
    const next = new URLSearchParams(query);
    const name = box.dataset.facet;
    if (name === 'brand') {
      box.checked ? brands.add(box.value) : brands.delete(box.value);
      brands.size ? next.set('brand', [...brands].join(',')) : next.delete('brand');
    } else if (name === 'category') {
      box.checked ? next.set('category', box.value) : next.delete('category');
    } else if (name === 'price') {
      if (box.checked) {
        const [min, max] = box.value.split('-');
        next.set('price', box.value);
        min ? next.set('min_price', min) : next.delete('min_price');
        max ? next.set('max_price', max) : next.delete('max_price');
      } else { next.delete('price'); next.delete('min_price'); next.delete('max_price'); }
    }
    go('/', next);
  }));
  $('#rating4').addEventListener('change', (e) => {
    const next = new URLSearchParams(query);
    e.target.checked ? next.set('min_rating', '4') : next.delete('min_rating');
    go('/', next);
  });
}

// ---------- product ----------
async function renderProduct(sku, seq = renderSeq) {
  const p = await api('GET', '/products/' + encodeURIComponent(sku));
  api('POST', '/recently-viewed', { session: state.session, sku }).catch(() => {});
  const [recs, similar, reviews] = await Promise.all([
    api('GET', `/products/${encodeURIComponent(sku)}/recommendations?session=${encodeURIComponent(state.session)}`).catch(() => []),
    api('GET', `/products/${encodeURIComponent(sku)}/similar?limit=4`).then((r) => r.hits).catch(() => []),
    api('GET', `/products/${encodeURIComponent(sku)}/reviews`).catch(() => ({ reviews: [], review_count: 0 })),
  ]);
  if (stale(seq)) return;
  view.innerHTML = `
    <article class="card" id="product">
      <h1>${esc(p.title)}</h1>
      <p class="muted">${esc(p.brand || '')} · ${esc(p.category)}</p>
      <p class="price" id="product-price">${money(p.price)}</p>
      <p>${esc(p.description)}</p>
      <p id="availability">${p.available > 0 ? `${p.available} in stock` : 'Sold out'}</p>
      <div class="row">
        <label>Quantity <input id="qty" type="number" min="1" value="1" style="width:5em"></label>
        <button class="primary" id="add-to-cart" ${p.available > 0 ? '' : 'disabled'}>Add to cart</button>
      </div>
    </article>
    <h2>Bought together</h2>
    <div class="grid" id="recommendations">
      ${recs.length ? recs.map((r) => `
        <div class="card"><a href="#/product/${encodeURIComponent(r.sku)}">
          <div class="title">${esc(r.title)}</div><div class="price">${money(r.price)}</div>
          <div class="muted">${esc(r.reasons.join(', ').replaceAll('_', ' '))}</div></a></div>`).join('') : '<p class="muted">Nothing yet.</p>'}
    </div>
    <h2>Similar products</h2>
    <div class="grid" id="similar">
      ${similar.length ? similar.map((h) => `
        <div class="card"><a href="#/product/${encodeURIComponent(h.sku)}">
          <div class="title">${esc(h.title)}</div><div class="price">${money(h.price)}</div></a></div>`).join('') : '<p class="muted">Nothing similar.</p>'}
    </div>
    <h2>Reviews ${reviews.average ? `<span class="stars">★ ${esc(reviews.average)}</span> <span class="muted">(${reviews.review_count})</span>` : ''}</h2>
    <div id="reviews">
      ${reviews.reviews.map((r) => `<div class="card"><span class="stars">${'★'.repeat(r.stars)}</span> <strong>${esc(r.title)}</strong>
        ${r.verified_purchase ? '<span class="muted">verified purchase</span>' : ''}<p>${esc(r.body)}</p><p class="muted">${esc(r.author)}</p></div>`).join('') || '<p class="muted">No reviews yet.</p>'}
    </div>
    ${state.user ? `
    <form id="review-form" class="card">
      <h3>Write a review</h3>
      <div class="row">
        <label>Stars <select name="stars">${[5, 4, 3, 2, 1].map((s) => `<option>${s}</option>`).join('')}</select></label>
        <label>Title <input name="title" required maxlength="120"></label>
      </div>
      <label>Review <textarea name="body" required rows="3" style="width:100%"></textarea></label>
      <button>Submit</button> <span class="muted">Shown once a moderator publishes it.</span>
    </form>` : ''}`;
  $('#add-to-cart').addEventListener('click', async () => {
    try {
      const cart = await api('POST', '/cart/lines', { sku, quantity: Number($('#qty').value) || 1 });
      $('#cart-count').textContent = cart.lines.reduce((n, l) => n + l.quantity, 0);
      alertBox(`Added to your cart.`);
    } catch (e) { showError(e); }
  });
  const form = $('#review-form');
  if (form) form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    try {
      await api('POST', `/products/${encodeURIComponent(sku)}/reviews`, { stars: Number(f.get('stars')), title: f.get('title'), body: f.get('body') });
      alertBox('Thanks! Your review is waiting for moderation.');
      form.reset();
    } catch (err) { showError(err); }
  });
}

// ---------- cart and checkout ----------
async function renderCart(seq = renderSeq) {
  const cart = await api('GET', '/cart');
  if (stale(seq)) return;
  $('#cart-count').textContent = cart.lines.reduce((n, l) => n + l.quantity, 0);
  const changed = cart.lines.filter((l) => l.price_changed);
  if (!cart.lines.length) {
    view.innerHTML = '<h1>Your cart</h1><p id="empty-cart">Your cart is empty.</p>';
    return;
  }
  const a = cart.shipping_address || {};
  view.innerHTML = `
    <h1>Your cart</h1>
    ${changed.length ? `<div id="price-changed" class="card changed">Prices changed since you added:
      ${changed.map((l) => `${esc(l.title)} ${money(l.unit_price)} → ${money(l.current_price)}`).join('; ')}
      <button id="accept-prices">Accept new prices</button></div>` : ''}
    <table id="cart-lines">
      <tr><th>Product</th><th>Price</th><th>Quantity</th><th>Total</th><th></th></tr>
      ${cart.lines.map((l) => `
        <tr data-sku="${esc(l.sku)}">
          <td><a href="#/product/${encodeURIComponent(l.sku)}">${esc(l.title)}</a>${l.available ? '' : ' <span class="changed">no longer available</span>'}</td>
          <td class="${l.price_changed ? 'changed' : ''}">${money(l.unit_price)}</td>
          <td><input type="number" min="0" value="${l.quantity}" class="qty" style="width:5em"></td>
          <td>${money(l.total)}</td>
          <td><button class="remove">Remove</button></td>
        </tr>`).join('')}
    </table>
    <div class="row" style="margin:1rem 0">
      <form id="code-form" class="row"><label>Promotion code <input name="code" placeholder="WELCOME10"></label><button>Apply</button></form>
      <span class="muted">${cart.codes.map(esc).join(', ')}</span>
    </div>
    <form id="address-form" class="card">
      <h3>Shipping address</h3>
      <div class="row">
        <label>Name <input name="name" required value="${esc(a.name)}"></label>
        <label>Street <input name="line1" required value="${esc(a.line1)}"></label>
        <label>City <input name="city" required value="${esc(a.city)}"></label>
        <label>Postcode <input name="postal_code" required value="${esc(a.postal_code)}"></label>
        <label>Country <input name="country" required value="${esc(a.country || 'GB')}" maxlength="2" style="width:4em"></label>
        <button>Save address</button>
      </div>
      <p class="muted" id="shipping-method">${esc(cart.shipping_method || '')}</p>
    </form>
    ${cart.totals ? `<table id="totals" style="max-width:360px;margin-left:auto">
      <tr><td>Subtotal</td><td>${money(cart.totals.subtotal)}</td></tr>
      <tr><td>Discounts</td><td>−${money(cart.totals.discount)}</td></tr>
      <tr><td>Shipping</td><td>${money(cart.totals.shipping)}</td></tr>
      <tr><th>Total</th><th id="cart-total">${money(cart.totals.total)}</th></tr>
      <tr><td class="muted" colspan="2">Includes VAT ${money(cart.totals.tax)}</td></tr></table>` : ''}
    <p class="muted">${cart.promotions.map(esc).join(' · ')}</p>
    <div class="row" style="justify-content:flex-end">
      <label>Card <select id="card"><option value="tok_visa">Visa ending 4242 (sandbox)</option><option value="tok_decline">A card that is declined</option></select></label>
      <button class="primary" id="checkout">${state.user ? 'Place order' : 'Sign in to check out'}</button>
    </div>`;
  view.querySelectorAll('tr[data-sku]').forEach((row) => {
    const sku = row.dataset.sku;
    row.querySelector('.qty').addEventListener('change', (e) =>
      mutate(() => api('PUT', '/cart/lines/' + encodeURIComponent(sku), { quantity: Number(e.target.value) })));
    row.querySelector('.remove').addEventListener('click', () =>
      mutate(() => api('DELETE', '/cart/lines/' + encodeURIComponent(sku))));
  });
  const accept = $('#accept-prices');
  if (accept) accept.addEventListener('click', () => mutate(() => api('POST', '/cart/acknowledge-prices')));
  $('#code-form').addEventListener('submit', (e) => {
    e.preventDefault();
    mutate(() => api('POST', '/cart/codes', { code: new FormData(e.target).get('code') }));
  });
  $('#address-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const f = Object.fromEntries(new FormData(e.target));
    mutate(() => api('PUT', '/cart/shipping-address', f));
  });
  $('#checkout').addEventListener('click', checkout);
}

async function mutate(call) {
  try { await call(); alertBox(''); } catch (e) { showError(e); }
  await renderCart();
}

// One key per attempt, kept until it succeeds, so a retry after a network error or a double
// click is the same checkout and never a second charge.
async function checkout() {
  if (!state.user) { $('#sign-in-dialog').showModal(); return; }
  let key = sessionStorage.getItem('checkout-key');
  if (!key) { key = newId(); sessionStorage.setItem('checkout-key', key); }
  const button = $('#checkout');
  button.disabled = true;
  try {
    const res = await api('POST', '/cart/checkout', { payment_method: $('#card').value }, { 'Idempotency-Key': key });
    sessionStorage.removeItem('checkout-key');
    const mine = JSON.parse(localStorage.getItem('orders') || '[]');
    if (!mine.includes(res.order_id)) mine.unshift(res.order_id);
    localStorage.setItem('orders', JSON.stringify(mine));
    $('#cart-count').textContent = '0';
    go('/orders/' + res.order_id);
  } catch (e) {
    // A refusal is final for this attempt: the next click is a new checkout.
    if (e.status !== 409 || (e.problem && e.problem.type !== '/problems/idempotency-key-in-flight')) sessionStorage.removeItem('checkout-key');
    showError(e);
    button.disabled = false;
  }
}

// ---------- orders ----------
async function renderOrders(seq = renderSeq) {
  if (stale(seq)) return;
  const mine = JSON.parse(localStorage.getItem('orders') || '[]');
  view.innerHTML = `<h1>Your orders</h1>${mine.length ? `<ul id="order-list">${mine.map((id) => `<li><a href="#/orders/${esc(id)}">${esc(id)}</a></li>`).join('')}</ul>` : '<p>No orders yet.</p>'}`;
}

async function renderOrder(id, seq = renderSeq) {
  if (!state.user) { view.innerHTML = '<p>Sign in to see your orders.</p>'; return; }
  const o = await api('GET', '/orders/' + encodeURIComponent(id));
  if (stale(seq)) return;
  view.innerHTML = `
    <h1>Order ${esc(o.id)}</h1>
    <p>Status: <strong id="order-status">${esc(o.status.replaceAll('_', ' '))}</strong></p>
    <table>${o.lines.map((l) => `<tr><td>${esc(l.title)}</td><td>${l.quantity} × ${money(l.unit_price)}</td></tr>`).join('')}
      <tr><th>Total</th><th id="order-total">${money(o.total)}</th></tr></table>
    <h3>Tracking</h3>
    ${o.tracking.length ? o.tracking.map((t) => `<p>${esc(t.carrier)} ${esc(t.tracking_number)}</p>`).join('') : '<p class="muted">Not shipped yet.</p>'}
    <h3>History</h3>
    <ol class="history">${o.history.map((h) => `<li>${esc(new Date(h.at).toLocaleString())}: ${esc(h.kind)} → ${esc(h.to.replaceAll('_', ' '))}</li>`).join('')}</ol>`;
}

// ---------- drops ----------
// The queue page of a flash-sale drop: join, see your place, buy once admitted.
let dropTimer = null;
async function renderDrop(sale, seq = renderSeq) {
  if (!state.user) { view.innerHTML = '<h1>Drop</h1><p>Sign in to join the queue.</p>'; return; }
  let s = await api('GET', '/drops/' + encodeURIComponent(sale));
  if (stale(seq)) return;
  const draw = () => {
    const when = new Date(s.starts_at);
    view.innerHTML = `
      <h1>Drop: ${esc(sale)}</h1>
      <p>Admissions start ${esc(when.toLocaleString())}. Everyone here before then is in the lottery; after that, first come first served.</p>
      <p id="drop-state" class="card">${{
        not_joined: 'You are not in the queue yet.',
        waiting: `You are number <strong id="drop-position">${s.position}</strong> in the queue. Keep this page open.`,
        admitted: `You are in! Check out before ${esc(new Date(s.admitted_until).toLocaleTimeString())}.`,
        closed: 'Sold out: every spot is taken.',
      }[s.state]}</p>
      ${s.state === 'not_joined' ? '<button class="primary" id="join">Join the queue</button>' : ''}
      ${s.state === 'admitted' ? '<button class="primary" id="buy">Buy now</button>' : ''}`;
    const join = $('#join');
    if (join) join.addEventListener('click', async () => { s = await api('POST', `/drops/${encodeURIComponent(sale)}/join`); draw(); poll(); });
    const buy = $('#buy');
    if (buy) buy.addEventListener('click', async () => {
      try { await api('POST', '/cart/lines', { sku: s.sku, quantity: 1 }); go('/cart'); } catch (e) { showError(e); }
    });
  };
  const poll = () => {
    clearTimeout(dropTimer);
    if (s.state !== 'waiting') return;
    dropTimer = setTimeout(async () => {
      if (!location.hash.startsWith('#/drop/')) return;
      s = await api('GET', '/drops/' + encodeURIComponent(sale));
      if (stale(seq)) return;
      draw();
      poll();
    }, s.poll_after_ms || 1000);
  };
  draw();
  poll();
}

// ---------- router ----------
// Renders can overlap (a slow page, then a click elsewhere): only the latest may draw.
let renderSeq = 0;
const stale = (seq) => seq !== renderSeq;

async function render() {
  const seq = ++renderSeq;
  alertBox('');
  const { path, query } = params();
  try {
    if (path === '/' || path === '') await renderSearch(query, seq);
    else if (path.startsWith('/product/')) await renderProduct(decodeURIComponent(path.slice(9)), seq);
    else if (path === '/cart') await renderCart(seq);
    else if (path === '/orders') await renderOrders(seq);
    else if (path.startsWith('/orders/')) await renderOrder(decodeURIComponent(path.slice(8)), seq);
    else if (path.startsWith('/drop/')) await renderDrop(decodeURIComponent(path.slice(6)), seq);
    else view.innerHTML = '<p>Not found.</p>';
  } catch (e) {
    if (!stale(seq)) showError(e);
  }
}

$('#search-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const q = new URLSearchParams();
  if ($('#q').value.trim()) q.set('q', $('#q').value.trim());
  go('/', q);
});
$('#sign-in').addEventListener('click', () => $('#sign-in-dialog').showModal());
$('#sign-out').addEventListener('click', () => { signOut(); render(); });
$('#sign-in-form').addEventListener('submit', async (e) => {
  if (e.submitter && e.submitter.value === 'cancel') return;
  try { await signIn($('#email').value); await render(); } catch (err) { showError(err); }
});
window.addEventListener('hashchange', render);
renderWho();
refreshCartCount();
render();
