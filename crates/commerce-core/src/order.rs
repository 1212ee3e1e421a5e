//! The order, its status state machine, and the ledger of every transition.
//!
//! The transition table is written once, in [`TRANSITIONS`]; its docs show it, and a test
//! keeps the two identical.

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::limits::{ADDRESS_FIELD_CHARS_MAX, ORDER_LEDGER_MAX, ORDER_LINES_MAX};
use crate::{
    CountryCode, Currency, Error, LocationId, Money, OrderId, PaymentRef, ProductId, Result, Sku,
    UserId,
};

mod settlement;

pub use settlement::{FxQuote, Settlement};

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Created by checkout; the payment has not succeeded yet.
    PendingPayment,
    /// Paid (authorized, and captured unless the capture waits for shipping); waiting for the
    /// warehouse.
    Confirmed,
    /// Being picked and packed (also after a lost or returned-to-sender parcel, for the
    /// replacement).
    Fulfilling,
    /// Handed to the carrier.
    Shipped,
    /// Received by the customer.
    Delivered,
    /// Cancelled before shipping. If money was captured, a refund follows; an authorization
    /// never captured is voided.
    Cancelled,
    /// The captured payment was refunded in full. Terminal.
    Refunded,
    /// The goods came back; a refund follows.
    Returned,
}

impl OrderStatus {
    /// Every status.
    pub const ALL: [OrderStatus; 8] = [
        OrderStatus::PendingPayment,
        OrderStatus::Confirmed,
        OrderStatus::Fulfilling,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
        OrderStatus::Refunded,
        OrderStatus::Returned,
    ];

    /// The snake_case name used in text and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PendingPayment => "pending_payment",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Fulfilling => "fulfilling",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Returned => "returned",
        }
    }

    /// True if no transition leaves this status.
    pub fn is_terminal(self) -> bool {
        !TRANSITIONS.iter().any(|(from, _, _)| *from == self)
    }
}

/// The kind of a [`Transition`], without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    /// The payment succeeded (authorized, maybe captured), or none was needed.
    ConfirmPayment,
    /// The warehouse started picking.
    StartFulfilment,
    /// Part of an authorized payment was captured (at a shipment; status unchanged).
    Capture,
    /// Some of the order's lines went to the carrier, the rest still to come (a split
    /// shipment).
    ShipPart,
    /// The (last) parcel went to the carrier: every line has shipped.
    Ship,
    /// The carrier delivered it.
    Deliver,
    /// Cancelled by the customer, the merchant, or a failed checkout.
    Cancel,
    /// The captured payment was refunded in full.
    Refund,
    /// The uncaptured authorization was released (status unchanged).
    Void,
    /// Returned goods arrived back.
    ReturnReceived,
    /// Shipping exception: the shipping address was corrected (status unchanged).
    CorrectAddress,
    /// Shipping exception: the carrier lost the parcel; a replacement is fulfilled.
    ReportLost,
    /// Shipping exception: the parcel came back undelivered; it is fulfilled again (or the order
    /// is cancelled and refunded).
    ReturnToSender,
}

impl TransitionKind {
    /// Every kind.
    pub const ALL: [TransitionKind; 13] = [
        TransitionKind::ConfirmPayment,
        TransitionKind::StartFulfilment,
        TransitionKind::Capture,
        TransitionKind::ShipPart,
        TransitionKind::Ship,
        TransitionKind::Deliver,
        TransitionKind::Cancel,
        TransitionKind::Refund,
        TransitionKind::Void,
        TransitionKind::ReturnReceived,
        TransitionKind::CorrectAddress,
        TransitionKind::ReportLost,
        TransitionKind::ReturnToSender,
    ];

    /// The snake_case name used in text and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::ConfirmPayment => "confirm_payment",
            TransitionKind::StartFulfilment => "start_fulfilment",
            TransitionKind::Capture => "capture",
            TransitionKind::ShipPart => "ship_part",
            TransitionKind::Ship => "ship",
            TransitionKind::Deliver => "deliver",
            TransitionKind::Cancel => "cancel",
            TransitionKind::Refund => "refund",
            TransitionKind::Void => "void",
            TransitionKind::ReturnReceived => "return_received",
            TransitionKind::CorrectAddress => "correct_address",
            TransitionKind::ReportLost => "report_lost",
            TransitionKind::ReturnToSender => "return_to_sender",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for TransitionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

use OrderStatus as S;
use TransitionKind as T;

#[doc = include_str!("../docs/order-transitions.md")]
pub const TRANSITIONS: &[(OrderStatus, TransitionKind, OrderStatus)] = &[
    (S::PendingPayment, T::ConfirmPayment, S::Confirmed),
    (S::PendingPayment, T::Cancel, S::Cancelled),
    (S::PendingPayment, T::CorrectAddress, S::PendingPayment),
    (S::Confirmed, T::StartFulfilment, S::Fulfilling),
    (S::Confirmed, T::Cancel, S::Cancelled),
    (S::Confirmed, T::CorrectAddress, S::Confirmed),
    (S::Confirmed, T::Capture, S::Confirmed),
    (S::Fulfilling, T::Capture, S::Fulfilling),
    (S::Fulfilling, T::ShipPart, S::Fulfilling),
    (S::Fulfilling, T::Ship, S::Shipped),
    (S::Fulfilling, T::Cancel, S::Cancelled),
    (S::Fulfilling, T::CorrectAddress, S::Fulfilling),
    (S::Shipped, T::Deliver, S::Delivered),
    (S::Shipped, T::CorrectAddress, S::Shipped),
    (S::Shipped, T::ReportLost, S::Fulfilling),
    (S::Shipped, T::ReturnToSender, S::Fulfilling),
    (S::Delivered, T::ReturnReceived, S::Returned),
    (S::Delivered, T::Refund, S::Refunded),
    (S::Returned, T::Refund, S::Refunded),
    (S::Cancelled, T::Refund, S::Refunded),
    (S::Cancelled, T::Void, S::Cancelled),
];

/// The status `kind` leads to from `from`, or `None` if the table has no such transition.
pub fn next_status(from: OrderStatus, kind: TransitionKind) -> Option<OrderStatus> {
    TRANSITIONS
        .iter()
        .find(|(f, k, _)| *f == from && *k == kind)
        .map(|(_, _, to)| *to)
}

/// Renders [`TRANSITIONS`] as the Markdown table its docs show.
pub fn transition_table_markdown() -> String {
    let mut out = String::from("| from | transition | to |\n|---|---|---|\n");
    for (from, kind, to) in TRANSITIONS {
        out.push_str(&format!("| `{from}` | `{kind}` | `{to}` |\n"));
    }
    out
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Recipient name.
    pub name: String,
    /// Street and number.
    pub line1: String,
    /// Flat, floor, company.
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// State, province or county, where the country uses one.
    pub region: Option<String>,
    /// Postal code.
    pub postal_code: String,
    /// Country.
    pub country: CountryCode,
}

impl Address {
    /// Checks that the required fields are present and every field is bounded.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field.
    pub fn validate(&self) -> Result<()> {
        let required = [
            ("address.name", &self.name),
            ("address.line1", &self.line1),
            ("address.city", &self.city),
            ("address.postal_code", &self.postal_code),
        ];
        for (field, value) in required {
            if value.trim().is_empty() {
                return Err(Error::invalid(field, "empty"));
            }
        }
        let all = required
            .iter()
            .map(|(f, v)| (*f, v.as_str()))
            .chain(self.line2.as_deref().map(|v| ("address.line2", v)))
            .chain(self.region.as_deref().map(|v| ("address.region", v)));
        for (field, value) in all {
            if value.chars().count() > ADDRESS_FIELD_CHARS_MAX {
                return Err(Error::invalid(field, "too long"));
            }
        }
        Ok(())
    }
}

/// What happened to an order, with its data. The ledger stores these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transition {
    /// The payment succeeded: authorized under `payment_ref`, of which `captured` was taken at
    /// once (all of it, or nothing when the capture waits for shipping). An order with nothing
    /// to pay confirms with neither.
    ConfirmPayment {
        /// The provider's reference for the payment; none for an order that costs nothing.
        payment_ref: Option<PaymentRef>,
        /// What was captured at confirmation: the grand total, or zero.
        captured: Money,
    },
    /// The warehouse started picking.
    StartFulfilment,
    /// `amount` of the authorization was captured; the running total never exceeds the grand
    /// total.
    Capture {
        /// The amount captured now.
        amount: Money,
    },
    /// A parcel with some of the order's lines went to a carrier; others follow.
    ShipPart {
        /// Carrier name.
        carrier: String,
        /// The carrier's tracking number.
        tracking_number: String,
        /// The SKUs in the parcel: not shipped before, and not all that are left.
        lines: Vec<Sku>,
    },
    /// The parcel with every line not yet shipped went to a carrier.
    Ship {
        /// Carrier name.
        carrier: String,
        /// The carrier's tracking number.
        tracking_number: String,
        /// The SKUs in the parcel; empty means every line not shipped yet, which is what the
        /// ledger records.
        #[serde(default)]
        lines: Vec<Sku>,
    },
    /// Delivered.
    Deliver,
    /// Cancelled.
    Cancel {
        /// Why, for the customer and the ledger.
        reason: String,
    },
    /// The captured money was refunded in full.
    Refund {
        /// The amount refunded; equal to what was captured.
        amount: Money,
    },
    /// The part of the authorization never captured was released.
    Void,
    /// Returned goods arrived.
    ReturnReceived,
    /// The shipping address was corrected.
    CorrectAddress {
        /// The corrected address.
        address: Address,
    },
    /// The carrier lost the parcel.
    ReportLost,
    /// The parcel came back undelivered.
    ReturnToSender,
}

impl Transition {
    /// The kind, without data.
    pub fn kind(&self) -> TransitionKind {
        match self {
            Transition::ConfirmPayment { .. } => T::ConfirmPayment,
            Transition::StartFulfilment => T::StartFulfilment,
            Transition::Capture { .. } => T::Capture,
            Transition::ShipPart { .. } => T::ShipPart,
            Transition::Ship { .. } => T::Ship,
            Transition::Deliver => T::Deliver,
            Transition::Cancel { .. } => T::Cancel,
            Transition::Refund { .. } => T::Refund,
            Transition::Void => T::Void,
            Transition::ReturnReceived => T::ReturnReceived,
            Transition::CorrectAddress { .. } => T::CorrectAddress,
            Transition::ReportLost => T::ReportLost,
            Transition::ReturnToSender => T::ReturnToSender,
        }
    }
}

/// One ledger entry: a transition the order went through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// 1 for the first transition, then +1 each.
    pub seq: u32,
    /// When it was applied.
    pub at: DateTime<Utc>,
    /// Status before.
    pub from: OrderStatus,
    /// Status after (equal to `from` for an address correction).
    pub to: OrderStatus,
    /// What happened.
    pub transition: Transition,
}

/// One order line, with the price snapshot taken at checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The SKU bought.
    pub sku: Sku,
    /// Its product.
    pub product_id: ProductId,
    /// Title at the time of purchase.
    pub title: String,
    /// Units, at least 1.
    pub quantity: u32,
    /// Unit price at the time of purchase.
    pub unit_price: Money,
    /// This line's share of all discounts, ≥ 0 and ≤ `unit_price × quantity`.
    pub discount: Money,
    /// The stock location its units are held at and ship from.
    pub location: LocationId,
}

impl OrderLine {
    /// `quantity` units of `sku` at `unit_price` from `location`, no discount; product id and
    /// title default to the SKU.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the SKU is not a valid product id (it always is: SKUs use a
    /// subset of the id characters).
    pub fn new(sku: Sku, quantity: u32, unit_price: Money, location: LocationId) -> Result<Self> {
        Ok(OrderLine {
            product_id: ProductId::new(sku.as_str())?,
            title: sku.as_str().to_owned(),
            discount: Money::zero(unit_price.currency()),
            sku,
            quantity,
            unit_price,
            location,
        })
    }

    /// With this share of the order's discounts.
    pub fn discounted(mut self, discount: Money) -> Self {
        self.discount = discount;
        self
    }

    /// With this product and title.
    pub fn of_product(mut self, product_id: ProductId, title: impl Into<String>) -> Self {
        self.product_id = product_id;
        self.title = title.into();
        self
    }

    /// `unit_price × quantity`.
    ///
    /// # Errors
    /// [`Error::Overflow`].
    pub fn subtotal(&self) -> Result<Money> {
        self.unit_price.checked_mul(Decimal::from(self.quantity))
    }

    /// `subtotal − discount`.
    ///
    /// # Errors
    /// [`Error::Overflow`], [`Error::CurrencyMismatch`].
    pub fn total(&self) -> Result<Money> {
        self.subtotal()?.checked_sub(&self.discount)
    }
}

/// What a new order is made of; [`Order::new`] validates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrder {
    /// The order id (checkout derives it; see the saga crate).
    pub id: OrderId,
    /// The customer.
    pub user_id: UserId,
    /// The one currency of every amount.
    pub currency: Currency,
    /// The lines, 1 to [`ORDER_LINES_MAX`].
    pub lines: Vec<OrderLine>,
    /// Shipping charged (after shipping discounts).
    pub shipping: Money,
    /// Fees charged (gift wrap, surcharges).
    #[serde(default)]
    pub fees: Option<Money>,
    /// Tax: charged on top when `tax_included` is false, contained in the prices when true.
    pub tax: Money,
    /// Whether prices include tax.
    #[serde(default)]
    pub tax_included: bool,
    /// Where to ship.
    pub shipping_address: Address,
    /// Where to bill.
    pub billing_address: Address,
    /// The rate the order settles at in the merchant's currency, when that is not the order's.
    #[serde(default)]
    pub settlement: Option<FxQuote>,
}

impl NewOrder {
    /// An order `id` of `user_id` in `currency` to `address` (billed there too), with no lines
    /// yet, free shipping, no fees, no tax and no settlement: add them with the `with_*`
    /// methods, then [`Order::new`] validates the whole.
    ///
    /// ```
    /// use commerce_core::*;
    /// # let address = testkit::sample_address();
    /// let eur = |minor| Money::from_minor(minor, Currency::EUR);
    /// let new = NewOrder::new(OrderId::new("o-1")?, UserId::new("ann@example.com")?, Currency::EUR, address)
    ///     .with_line(OrderLine::new(Sku::new("MUG")?, 2, eur(1_250), LocationId::new("berlin")?)?)
    ///     .with_shipping(eur(490));
    /// let order = Order::new(new, testkit::t0())?;
    /// assert_eq!(order.totals().grand_total, eur(2_990));
    /// # Ok::<(), commerce_core::Error>(())
    /// ```
    pub fn new(id: OrderId, user_id: UserId, currency: Currency, address: Address) -> NewOrder {
        NewOrder {
            id,
            user_id,
            currency,
            lines: Vec::new(),
            shipping: Money::zero(currency),
            fees: None,
            tax: Money::zero(currency),
            tax_included: false,
            billing_address: address.clone(),
            shipping_address: address,
            settlement: None,
        }
    }

    /// With one more line.
    pub fn with_line(mut self, line: OrderLine) -> NewOrder {
        self.lines.push(line);
        self
    }

    /// With shipping charged.
    pub fn with_shipping(mut self, shipping: Money) -> NewOrder {
        self.shipping = shipping;
        self
    }

    /// With fees charged.
    pub fn with_fees(mut self, fees: Money) -> NewOrder {
        self.fees = Some(fees);
        self
    }

    /// With tax: added on top, or contained in the prices when `included`.
    pub fn with_tax(mut self, tax: Money, included: bool) -> NewOrder {
        self.tax = tax;
        self.tax_included = included;
        self
    }

    /// Billed to another address than it ships to.
    pub fn billed_to(mut self, address: Address) -> NewOrder {
        self.billing_address = address;
        self
    }

    /// Settled in the merchant's currency at `quote`.
    pub fn settled_at(mut self, quote: FxQuote) -> NewOrder {
        self.settlement = Some(quote);
        self
    }
}

/// Totals derived from an order's lines, shipping and tax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderTotals {
    /// Σ unit price × quantity.
    pub subtotal: Money,
    /// Σ line discounts.
    pub discount: Money,
    /// Shipping.
    pub shipping: Money,
    /// Fees.
    pub fees: Money,
    /// Tax.
    pub tax: Money,
    /// Whether `tax` is contained in the prices (then it is not added again).
    pub tax_included: bool,
    /// `subtotal − discount + shipping + fees (+ tax unless included)`: what is charged.
    pub grand_total: Money,
}

/// An order: what was bought, at which prices, where it goes, and every transition it went
/// through. Fields are private: an order only changes through [`Order::apply`], which follows
/// [`TRANSITIONS`] and appends to the ledger, or refuses and changes nothing.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use commerce_core::{OrderStatus, PaymentRef, Transition, TransitionKind, Error};
/// # let mut order = commerce_core::testkit::sample_order("order-1");
/// assert_eq!(order.status(), OrderStatus::PendingPayment);
/// let at = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
/// let paid = order.totals().grand_total;
/// order.apply(Transition::ConfirmPayment { payment_ref: Some(PaymentRef::new("pay-1")?), captured: paid }, at)?;
/// assert_eq!(order.status(), OrderStatus::Confirmed);
///
/// // Delivering an order that never shipped is refused, and nothing changes.
/// let err = order.apply(Transition::Deliver, at).unwrap_err();
/// assert_eq!(err, Error::IllegalTransition { from: OrderStatus::Confirmed, transition: TransitionKind::Deliver });
/// assert_eq!(order.ledger().len(), 1);
/// # Ok::<(), commerce_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "OrderRecord", into = "OrderRecord")]
pub struct Order {
    id: OrderId,
    user_id: UserId,
    currency: Currency,
    lines: Vec<OrderLine>,
    totals: OrderTotals,
    shipping_address: Address,
    billing_address: Address,
    settlement: Option<Settlement>,
    payment_ref: Option<PaymentRef>,
    created_at: DateTime<Utc>,
    status: OrderStatus,
    ledger: Vec<LedgerEntry>,
}

impl Order {
    /// Creates an order in `pending_payment` with an empty ledger.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field: no lines, too many lines, a zero quantity, an amount
    /// in another currency or not in minor units, a negative amount, a discount larger than its
    /// line, a bad address. [`Error::Overflow`] for absurd totals.
    pub fn new(new: NewOrder, created_at: DateTime<Utc>) -> Result<Order> {
        let totals = compute_totals(&new)?;
        new.shipping_address.validate()?;
        new.billing_address.validate()?;
        let settlement = match new.settlement {
            Some(quote) => {
                if quote.from != new.currency {
                    return Err(Error::invalid(
                        "settlement.from",
                        "must be the order's currency",
                    ));
                }
                let lines = new
                    .lines
                    .iter()
                    .map(OrderLine::total)
                    .collect::<Result<Vec<_>>>()?;
                Some(Settlement::new(
                    quote,
                    &totals.grand_total,
                    &lines,
                    (&totals.shipping, &totals.fees, &totals.tax),
                    totals.tax_included,
                )?)
            }
            None => None,
        };
        Ok(Order {
            id: new.id,
            user_id: new.user_id,
            currency: new.currency,
            lines: new.lines,
            totals,
            shipping_address: new.shipping_address,
            billing_address: new.billing_address,
            settlement,
            payment_ref: None,
            created_at,
            status: OrderStatus::PendingPayment,
            ledger: Vec::new(),
        })
    }

    /// Applies `transition` at `at`: checks [`TRANSITIONS`] and the transition's own guard,
    /// appends a ledger entry, and updates the status and any data the transition carries.
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] if the table has no such transition from the current status;
    /// [`Error::Invalid`] if its guard fails (a refund of another amount than the grand total, a
    /// refund of an order never paid, a bad corrected address, a full ledger). The order is
    /// unchanged on error.
    pub fn apply(&mut self, transition: Transition, at: DateTime<Utc>) -> Result<&LedgerEntry> {
        let kind = transition.kind();
        let to = next_status(self.status, kind).ok_or(Error::IllegalTransition {
            from: self.status,
            transition: kind,
        })?;
        if self.ledger.len() >= ORDER_LEDGER_MAX {
            return Err(Error::invalid("order.ledger", "full"));
        }
        let transition = self.check(transition)?;
        // Checked above: nothing below can fail.
        match &transition {
            Transition::ConfirmPayment { payment_ref, .. } => {
                self.payment_ref.clone_from(payment_ref);
            }
            Transition::CorrectAddress { address } => self.shipping_address = address.clone(),
            _ => {}
        }
        let seq = u32::try_from(self.ledger.len() + 1).unwrap_or(u32::MAX);
        self.ledger.push(LedgerEntry {
            seq,
            at,
            from: self.status,
            to,
            transition,
        });
        self.status = to;
        Ok(self
            .ledger
            .last()
            .unwrap_or_else(|| unreachable!("just pushed")))
    }

    /// Checks `transition`'s own guard against the order as it is, and fills in what the order
    /// knows (a final shipment's lines).
    fn check(&self, transition: Transition) -> Result<Transition> {
        let money_ok = |m: &Money| m.currency() == self.currency && m.is_rounded();
        let captured = self.captured();
        match transition {
            Transition::ConfirmPayment {
                payment_ref,
                captured,
            } => {
                if !money_ok(&captured)
                    || captured.is_negative()
                    || captured.amount() > self.totals.grand_total.amount()
                {
                    return Err(Error::invalid(
                        "confirm_payment.captured",
                        "must be between zero and the grand total, in the order's currency",
                    ));
                }
                if payment_ref.is_none()
                    && (!self.totals.grand_total.is_zero() || !captured.is_zero())
                {
                    return Err(Error::invalid(
                        "confirm_payment.payment_ref",
                        "an order that costs something needs a payment",
                    ));
                }
                Ok(Transition::ConfirmPayment {
                    payment_ref,
                    captured,
                })
            }
            Transition::Capture { amount } => {
                if self.payment_ref.is_none() {
                    return Err(Error::invalid("capture", "the order has no payment"));
                }
                let after = captured.checked_add(&amount)?;
                if !money_ok(&amount)
                    || !amount.is_positive()
                    || after.amount() > self.totals.grand_total.amount()
                {
                    return Err(Error::invalid(
                        "capture.amount",
                        "must be positive and keep the captured total within the grand total",
                    ));
                }
                Ok(Transition::Capture { amount })
            }
            Transition::ShipPart {
                carrier,
                tracking_number,
                lines,
            } => {
                check_carrier(&carrier, &tracking_number)?;
                let unshipped = self.unshipped();
                let known = lines.iter().all(|l| unshipped.contains(l));
                let distinct = lines
                    .iter()
                    .enumerate()
                    .all(|(i, l)| !lines[..i].contains(l));
                if lines.is_empty() || !known || !distinct || lines.len() >= unshipped.len() {
                    return Err(Error::invalid(
                        "ship_part.lines",
                        "some, not all, of the lines not shipped yet, each once",
                    ));
                }
                Ok(Transition::ShipPart {
                    carrier,
                    tracking_number,
                    lines,
                })
            }
            Transition::Ship {
                carrier,
                tracking_number,
                lines,
            } => {
                check_carrier(&carrier, &tracking_number)?;
                let unshipped = self.unshipped();
                let same =
                    lines.len() == unshipped.len() && unshipped.iter().all(|u| lines.contains(u));
                if !lines.is_empty() && !same {
                    return Err(Error::invalid(
                        "ship.lines",
                        "the last parcel carries every line not shipped yet",
                    ));
                }
                Ok(Transition::Ship {
                    carrier,
                    tracking_number,
                    lines: unshipped,
                })
            }
            Transition::Cancel { reason } => {
                if self
                    .ledger
                    .iter()
                    .any(|e| e.transition.kind() == TransitionKind::ShipPart)
                {
                    // Part of it is on its way: it can only come back as a return.
                    return Err(Error::IllegalTransition {
                        from: self.status,
                        transition: TransitionKind::Cancel,
                    });
                }
                Ok(Transition::Cancel { reason })
            }
            Transition::Refund { amount } => {
                if self.payment_ref.is_none() || captured.is_zero() {
                    return Err(Error::invalid("refund", "nothing was captured"));
                }
                if amount != captured {
                    return Err(Error::invalid(
                        "refund.amount",
                        "must equal what was captured",
                    ));
                }
                Ok(Transition::Refund { amount })
            }
            Transition::Void => {
                let voided = self
                    .ledger
                    .iter()
                    .any(|e| e.transition.kind() == TransitionKind::Void);
                if self.payment_ref.is_none() || voided || self.uncaptured()?.is_zero() {
                    return Err(Error::invalid("void", "no uncaptured authorization"));
                }
                Ok(Transition::Void)
            }
            Transition::CorrectAddress { address } => {
                address.validate()?;
                Ok(Transition::CorrectAddress { address })
            }
            other => Ok(other),
        }
    }

    /// Replays `ledger` from `pending_payment` through [`TRANSITIONS`] and returns the status it
    /// ends in.
    ///
    /// # Errors
    /// [`Error::IllegalTransition`] for an entry the table does not allow, [`Error::Invalid`]
    /// for an entry whose `from`, `to` or `seq` disagrees with the replay.
    pub fn replay(ledger: &[LedgerEntry]) -> Result<OrderStatus> {
        let mut status = OrderStatus::PendingPayment;
        for (i, entry) in ledger.iter().enumerate() {
            let kind = entry.transition.kind();
            let to = next_status(status, kind).ok_or(Error::IllegalTransition {
                from: status,
                transition: kind,
            })?;
            let seq_ok = usize::try_from(entry.seq).is_ok_and(|s| s == i + 1);
            if entry.from != status || entry.to != to || !seq_ok {
                return Err(Error::invalid(
                    "order.ledger",
                    format!("entry {} disagrees", i + 1),
                ));
            }
            status = to;
        }
        Ok(status)
    }

    /// The order id.
    pub fn id(&self) -> &OrderId {
        &self.id
    }
    /// The customer.
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }
    /// The order's currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }
    /// The lines.
    pub fn lines(&self) -> &[OrderLine] {
        &self.lines
    }
    /// The totals.
    pub fn totals(&self) -> &OrderTotals {
        &self.totals
    }
    /// Where it ships (the latest corrected address).
    pub fn shipping_address(&self) -> &Address {
        &self.shipping_address
    }
    /// Where it is billed.
    pub fn billing_address(&self) -> &Address {
        &self.billing_address
    }
    /// The payment reference, once paid (none for an order that cost nothing).
    pub fn payment_ref(&self) -> Option<&PaymentRef> {
        self.payment_ref.as_ref()
    }

    /// True once the payment succeeded (or was not needed): the order's ledger holds its
    /// confirmation, whatever happened since.
    pub fn is_confirmed(&self) -> bool {
        self.ledger
            .iter()
            .any(|e| e.transition.kind() == TransitionKind::ConfirmPayment)
    }

    /// Money captured so far: at confirmation, then at shipments.
    pub fn captured(&self) -> Money {
        self.ledger
            .iter()
            .filter_map(|e| match &e.transition {
                Transition::ConfirmPayment { captured, .. } => Some(*captured),
                Transition::Capture { amount } => Some(*amount),
                _ => None,
            })
            .fold(Money::zero(self.currency), |acc, m| {
                acc.checked_add(&m).unwrap_or(acc)
            })
    }

    /// The part of the grand total authorized and not captured (zero before the payment, and
    /// once the authorization is voided or captured in full).
    ///
    /// # Errors
    /// [`Error::Overflow`] (never for a validated order).
    pub fn uncaptured(&self) -> Result<Money> {
        let voided = self
            .ledger
            .iter()
            .any(|e| e.transition.kind() == TransitionKind::Void);
        if self.payment_ref.is_none() || voided {
            return Ok(Money::zero(self.currency));
        }
        self.totals.grand_total.checked_sub(&self.captured())
    }

    /// The lines' SKUs not shipped yet, in line order: every line before the first parcel; the
    /// lost or returned parcel's lines again after a shipping exception.
    pub fn unshipped(&self) -> Vec<Sku> {
        let mut shipped: Vec<&Sku> = Vec::new();
        let mut last: &[Sku] = &[];
        for entry in &self.ledger {
            match &entry.transition {
                Transition::ShipPart { lines, .. } => shipped.extend(lines),
                Transition::Ship { lines, .. } => {
                    shipped.extend(lines);
                    last = lines;
                }
                Transition::ReportLost | Transition::ReturnToSender => {
                    shipped.retain(|s| !last.contains(s));
                }
                _ => {}
            }
        }
        self.lines
            .iter()
            .map(|l| &l.sku)
            .filter(|s| !shipped.contains(s))
            .cloned()
            .collect()
    }

    /// What a parcel with `lines` captures: their share of the grand total (shipping, fees and
    /// tax shared over the lines by their totals, exactly); the last parcel captures whatever
    /// is left, so the shares add up to the grand total.
    ///
    /// # Errors
    /// [`Error::Overflow`] (never for a validated order).
    pub fn capture_share(&self, lines: &[Sku]) -> Result<Money> {
        let uncaptured = self.uncaptured()?;
        let unshipped = self.unshipped();
        if unshipped.iter().all(|u| lines.contains(u)) {
            return Ok(uncaptured);
        }
        let totals = self
            .lines
            .iter()
            .map(|l| l.total().and_then(|t| t.to_minor()).map(i128::from))
            .collect::<Result<Vec<_>>>()?;
        let shares =
            crate::allocate_minor(i128::from(self.totals.grand_total.to_minor()?), &totals)?;
        let share: i128 = self
            .lines
            .iter()
            .zip(shares)
            .filter(|(l, _)| lines.contains(&l.sku))
            .map(|(_, s)| s)
            .sum();
        let share = i64::try_from(share).map_err(|_| Error::Overflow {
            operation: "capture share",
        })?;
        let share = Money::from_minor(share, self.currency);
        Ok(if share.amount() > uncaptured.amount() {
            uncaptured
        } else {
            share
        })
    }

    /// The order's amounts in the merchant's currency, when it settles in another.
    pub fn settlement(&self) -> Option<&Settlement> {
        self.settlement.as_ref()
    }

    /// What `amount` moved after `before` (both in the order's currency: a capture after the
    /// captures so far, a refund after the refunds so far) settles to in the merchant's
    /// currency, at the order's rate; `None` for an order that settles in its own currency.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the amounts exceed the grand total; [`Error::Overflow`].
    pub fn settled(&self, before: &Money, amount: &Money) -> Result<Option<Money>> {
        self.settlement
            .as_ref()
            .map(|s| s.share(&self.totals.grand_total, before, amount))
            .transpose()
    }
    /// When checkout created it.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    /// The current status.
    pub fn status(&self) -> OrderStatus {
        self.status
    }
    /// Every transition, oldest first.
    pub fn ledger(&self) -> &[LedgerEntry] {
        &self.ledger
    }
    /// The version for compare-and-set: the number of ledger entries.
    pub fn version(&self) -> u64 {
        self.ledger.len() as u64
    }

    /// True if this order is `earlier` plus zero or more transitions: the same order (id,
    /// customer, lines, totals, billing address, creation) whose ledger starts with all of
    /// `earlier`'s. An order store refuses an update that does not extend what it holds, so a
    /// stale or forged snapshot can never rewrite history.
    pub fn extends(&self, earlier: &Order) -> bool {
        self.id == earlier.id
            && self.user_id == earlier.user_id
            && self.currency == earlier.currency
            && self.lines == earlier.lines
            && self.totals == earlier.totals
            && self.settlement == earlier.settlement
            && self.billing_address == earlier.billing_address
            && self.created_at == earlier.created_at
            && self.ledger.starts_with(&earlier.ledger)
    }

    /// `OrderStatusChanged` for every ledger entry after `version` (the version the order had
    /// when it was read), to commit with the update that appends them. The event id is
    /// `{order}:{seq}`, one per ledger entry, so a retried update commits each once.
    ///
    /// # Errors
    /// [`Error::Invalid`] if a derived event id does not fit.
    pub fn status_events(&self, version: u64) -> Result<Vec<crate::EventEnvelope>> {
        let skip = usize::try_from(version).unwrap_or(usize::MAX);
        self.ledger
            .iter()
            .skip(skip)
            .map(|entry| {
                Ok(crate::EventEnvelope::new(
                    crate::EventId::new(format!("{}:{}", self.id, entry.seq))?,
                    entry.at,
                    crate::DomainEvent::OrderStatusChanged {
                        order_id: self.id.clone(),
                        from: entry.from,
                        to: entry.to,
                        transition: entry.transition.kind(),
                        seq: entry.seq,
                    },
                ))
            })
            .collect()
    }
}

fn check_carrier(carrier: &str, tracking_number: &str) -> Result<()> {
    if carrier.trim().is_empty() || tracking_number.trim().is_empty() {
        return Err(Error::invalid(
            "ship",
            "carrier and tracking number are required",
        ));
    }
    Ok(())
}

fn compute_totals(new: &NewOrder) -> Result<OrderTotals> {
    let c = new.currency;
    if new.lines.is_empty() {
        return Err(Error::invalid("order.lines", "no lines"));
    }
    if new.lines.len() > ORDER_LINES_MAX {
        return Err(Error::invalid(
            "order.lines",
            format!("more than {ORDER_LINES_MAX}"),
        ));
    }
    let amount_ok = |m: &Money| m.currency() == c && m.is_rounded() && !m.is_negative();
    let mut subtotal = Money::zero(c);
    let mut discount = Money::zero(c);
    for line in &new.lines {
        if line.quantity == 0 {
            return Err(Error::invalid("order.lines.quantity", "zero"));
        }
        if !amount_ok(&line.unit_price) {
            return Err(Error::invalid(
                "order.lines.unit_price",
                "wrong currency, unrounded or negative",
            ));
        }
        if !amount_ok(&line.discount) {
            return Err(Error::invalid(
                "order.lines.discount",
                "wrong currency, unrounded or negative",
            ));
        }
        let line_subtotal = line.subtotal()?;
        if line.discount.amount() > line_subtotal.amount() {
            return Err(Error::invalid(
                "order.lines.discount",
                "larger than the line",
            ));
        }
        subtotal = subtotal.checked_add(&line_subtotal)?;
        discount = discount.checked_add(&line.discount)?;
    }
    let fees = new.fees.unwrap_or_else(|| Money::zero(c));
    for (field, m) in [
        ("order.shipping", &new.shipping),
        ("order.fees", &fees),
        ("order.tax", &new.tax),
    ] {
        if !amount_ok(m) {
            return Err(Error::invalid(
                field,
                "wrong currency, unrounded or negative",
            ));
        }
    }
    let mut grand_total = subtotal
        .checked_sub(&discount)?
        .checked_add(&new.shipping)?
        .checked_add(&fees)?;
    if !new.tax_included {
        grand_total = grand_total.checked_add(&new.tax)?;
    }
    Ok(OrderTotals {
        subtotal,
        discount,
        shipping: new.shipping,
        fees,
        tax: new.tax,
        tax_included: new.tax_included,
        grand_total,
    })
}

/// The serialized form of an [`Order`]; loading re-validates it and replays the ledger.
#[derive(Serialize, Deserialize)]
struct OrderRecord {
    id: OrderId,
    user_id: UserId,
    currency: Currency,
    lines: Vec<OrderLine>,
    totals: OrderTotals,
    shipping_address: Address,
    billing_address: Address,
    #[serde(default)]
    settlement: Option<Settlement>,
    payment_ref: Option<PaymentRef>,
    created_at: DateTime<Utc>,
    status: OrderStatus,
    ledger: Vec<LedgerEntry>,
}

impl TryFrom<OrderRecord> for Order {
    type Error = Error;
    /// Rebuilds the order by applying its ledger through [`Order::apply`], so a stored order
    /// passes the same guards as a live one (a refund needs a payment and the grand total, a
    /// shipment a carrier, a corrected address must be valid), then checks that every entry,
    /// the status, the payment and the shipping address agree with the record.
    fn try_from(r: OrderRecord) -> Result<Order> {
        let corrected = r
            .ledger
            .iter()
            .any(|e| matches!(e.transition, Transition::CorrectAddress { .. }));
        let new = NewOrder {
            id: r.id,
            user_id: r.user_id,
            currency: r.currency,
            lines: r.lines,
            shipping: r.totals.shipping,
            fees: Some(r.totals.fees),
            tax: r.totals.tax,
            tax_included: r.totals.tax_included,
            // The address the order was placed with is not kept once corrected; the ledger's
            // corrections rebuild the current one.
            shipping_address: if corrected {
                r.billing_address.clone()
            } else {
                r.shipping_address.clone()
            },
            billing_address: r.billing_address,
            settlement: r.settlement.as_ref().map(|s| s.quote.clone()),
        };
        let mut order = Order::new(new, r.created_at)?;
        if order.totals != r.totals {
            return Err(Error::invalid("order.totals", "do not match the lines"));
        }
        if order.settlement != r.settlement {
            return Err(Error::invalid(
                "order.settlement",
                "does not match the totals at its rate",
            ));
        }
        for (i, entry) in r.ledger.iter().enumerate() {
            if order.apply(entry.transition.clone(), entry.at)? != entry {
                return Err(Error::invalid(
                    "order.ledger",
                    format!("entry {} disagrees", i + 1),
                ));
            }
        }
        if order.status != r.status {
            return Err(Error::invalid("order.status", "does not match the ledger"));
        }
        if order.payment_ref != r.payment_ref {
            return Err(Error::invalid(
                "order.payment_ref",
                "does not match the ledger",
            ));
        }
        if order.shipping_address != r.shipping_address {
            return Err(Error::invalid(
                "order.shipping_address",
                "does not match the ledger",
            ));
        }
        Ok(order)
    }
}

impl From<Order> for OrderRecord {
    fn from(o: Order) -> OrderRecord {
        OrderRecord {
            id: o.id,
            user_id: o.user_id,
            currency: o.currency,
            lines: o.lines,
            totals: o.totals,
            shipping_address: o.shipping_address,
            billing_address: o.billing_address,
            settlement: o.settlement,
            payment_ref: o.payment_ref,
            created_at: o.created_at,
            status: o.status,
            ledger: o.ledger,
        }
    }
}

#[cfg(test)]
mod tests;
