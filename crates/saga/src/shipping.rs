//! Rate shopping across carriers.

use std::sync::Arc;

use chrono::NaiveDate;
use commerce_core::{Carrier, ErrorKind, PortError, RateQuote, ShipmentRequest};

/// The cheapest quote across `carriers` that delivers by `promised_by` (ties: the earlier
/// delivery, then the carrier and service names, so the choice is deterministic). A carrier
/// that fails to quote is skipped.
///
/// # Errors
/// `NotFound` when no carrier can deliver in time; `Invalid` when every carrier refused the
/// shipment as invalid.
pub async fn rate_shop(
    carriers: &[Arc<dyn Carrier>],
    request: &ShipmentRequest,
    promised_by: NaiveDate,
) -> Result<RateQuote, PortError> {
    let mut quotes = Vec::new();
    let mut invalid = 0;
    for carrier in carriers {
        match carrier.quote(request).await {
            Ok(q) => quotes.extend(q),
            Err(e) if e.kind == ErrorKind::Invalid => invalid += 1,
            Err(_) => {}
        }
    }
    if quotes.is_empty() && invalid == carriers.len() && !carriers.is_empty() {
        return Err(PortError::new(
            ErrorKind::Invalid,
            "every carrier refused the shipment",
        ));
    }
    quotes
        .into_iter()
        .filter(|q| q.estimated_delivery <= promised_by && q.amount.currency() == request.currency)
        .min_by(|a, b| {
            a.amount
                .amount()
                .cmp(&b.amount.amount())
                .then(a.estimated_delivery.cmp(&b.estimated_delivery))
                .then_with(|| a.carrier.cmp(&b.carrier))
                .then_with(|| a.service.cmp(&b.service))
        })
        .ok_or_else(|| {
            PortError::new(
                ErrorKind::NotFound,
                format!("no carrier delivers by {promised_by}"),
            )
        })
}
