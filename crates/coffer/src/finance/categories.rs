//! The default category tree every customer starts with: two levels, names unique across
//! the tree (so a name alone names a category), and the system category `Uncategorised`
//! that receives what nothing else claims and what deleted categories held.

/// The name of the system category.
pub const UNCATEGORISED: &str = "Uncategorised";

/// Top-level categories and their children.
pub const DEFAULT_TREE: &[(&str, &[&str])] = &[
    ("Food & Dining", &["Groceries", "Restaurants", "Coffee Shops", "Fast Food", "Bars", "Food Delivery"]),
    ("Transportation", &["Public Transit", "Taxi & Rideshare", "Fuel", "Parking & Tolls", "Car Maintenance"]),
    (
        "Shopping",
        &["Clothing", "Electronics", "Home & Garden", "Online Shopping", "Books", "Department Stores"],
    ),
    (
        "Bills & Utilities",
        &["Electricity & Gas", "Water", "Internet", "Mobile Phone", "Subscriptions", "Government"],
    ),
    ("Housing", &["Rent", "Mortgage", "Insurance", "Home Maintenance"]),
    ("Health", &["Pharmacy", "Doctor", "Dentist", "Fitness"]),
    ("Entertainment", &["Movies", "Music", "Games", "Events"]),
    ("Travel", &["Flights", "Hotels", "Car Rental", "Travel Agencies"]),
    ("Education", &["Tuition", "Courses", "School Supplies"]),
    ("Income", &["Salary", "Interest", "Refunds"]),
    ("Transfers", &["Money Sent", "Money Received", "Cash Withdrawal"]),
    ("Fees", &["Bank Fees", "Service Fees"]),
];

/// Every category name of the default tree, parents first.
pub fn default_names() -> impl Iterator<Item = (&'static str, Option<&'static str>)> {
    DEFAULT_TREE.iter().flat_map(|(parent, children)| {
        std::iter::once((*parent, None)).chain(children.iter().map(|c| (*c, Some(*parent))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_two_levels() {
        let names: Vec<&str> = default_names().map(|(name, _)| name).collect();
        let unique: std::collections::HashSet<&str> = names.iter().copied().collect();
        assert_eq!(names.len(), unique.len());
        assert!(!unique.contains(UNCATEGORISED));
        assert!(
            default_names()
                .all(|(_, parent)| parent.is_none_or(|p| DEFAULT_TREE.iter().any(|(t, _)| *t == p)))
        );
    }
}
