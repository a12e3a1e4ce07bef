//! What the hash chain costs a full batch: links over 8,190 transfers, timed.
//! `cargo run --release -p ledger --example chain_cost`

fn main() {
    let transfers: Vec<ledger::Transfer> = (1..=ledger::BATCH_EVENTS_MAX as u128)
        .map(|id| ledger::Transfer {
            id,
            debit_account_id: 1,
            credit_account_id: 2,
            amount: 10,
            ledger: 1,
            code: 1,
            timestamp: id as u64,
            ..Default::default()
        })
        .collect();
    let rounds = 100;
    let start = std::time::Instant::now();
    let mut previous = None;
    for _ in 0..rounds {
        previous = Some(ledger::chain::link(previous.as_ref(), &transfers));
    }
    println!("{:?} per link of {} transfers", start.elapsed() / rounds, transfers.len());
}
