//! Promotion conditions checked against the working state and the shopper, with a
//! human-readable reason when one fails.

use super::arith::minor_of;
use super::context::PricingContext;
use super::model::Condition;
use super::work::Work;

/// Whether `c` holds; the error says which part failed and by how much.
pub(super) fn check_condition(
    c: &Condition,
    work: &Work<'_>,
    ctx: &PricingContext<'_>,
) -> std::result::Result<(), String> {
    match c {
        Condition::All(cs) => cs.iter().try_for_each(|c| check_condition(c, work, ctx)),
        Condition::Any(cs) => {
            let mut failures = Vec::new();
            for c in cs {
                match check_condition(c, work, ctx) {
                    Ok(()) => return Ok(()),
                    Err(e) => failures.push(e),
                }
            }
            Err(format!("none of: {}", failures.join("; ")))
        }
        Condition::MinSubtotal { amount, items } => work
            .basis_value_reaches(items, minor_of(amount))
            .map_err(|value| {
                format!(
                    "min_subtotal {amount}: matching lines hold {}",
                    work.display(value)
                )
            }),
        Condition::MinQuantity { quantity, items } => {
            let units: u64 = work
                .matching(items)
                .map(|i| u64::from(work.lines[i].quantity))
                .sum();
            if units >= u64::from(*quantity) {
                Ok(())
            } else {
                Err(format!(
                    "min_quantity {quantity}: matching lines hold {units}"
                ))
            }
        }
        Condition::LineQuantity { quantity, items } => {
            let most = work
                .matching(items)
                .map(|i| work.lines[i].quantity)
                .max()
                .unwrap_or(0);
            if most >= *quantity {
                Ok(())
            } else {
                Err(format!(
                    "line_quantity {quantity}: the largest matching line holds {most}"
                ))
            }
        }
        Condition::ContainsItems(items) => {
            if work.matching(items).next().is_some() {
                Ok(())
            } else {
                Err("contains_items: no matching line".into())
            }
        }
        Condition::CustomerGroup(groups) => match ctx.customer {
            Some(c) if c.groups.iter().any(|g| groups.contains(g)) => Ok(()),
            Some(_) => Err("customer_group: the customer is in none of the groups".into()),
            None => Err("customer_group: no customer".into()),
        },
        Condition::DateWindow { starts_at, ends_at } => {
            if starts_at.is_some_and(|s| ctx.now < s) {
                Err("date_window: not started".into())
            } else if ends_at.is_some_and(|e| ctx.now >= e) {
                Err("date_window: ended".into())
            } else {
                Ok(())
            }
        }
        Condition::FirstOrder => match ctx.customer {
            Some(c) if c.orders_placed > 0 => {
                Err(format!("first_order: {} orders placed", c.orders_placed))
            }
            _ => Ok(()),
        },
    }
}
