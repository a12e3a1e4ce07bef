//! Sending queued emails: over SMTP when `COFFER_SMTP_URL` is set (lettre; e.g.
//! `smtp://mail.example.com:25`), otherwise into a file outbox (`DATA_DIR/mail/*.eml`),
//! so the embedded default still shows what would have been sent. Failed sends are
//! retried with exponential backoff, [`ATTEMPTS_MAX`] times at most.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use store::{EmailRow, Store};
use tokio_util::sync::CancellationToken;

/// Attempts per email before it is given up (the last about 4 hours after the first).
pub const ATTEMPTS_MAX: i64 = 10;
/// Emails per worker step.
const BATCH: u32 = 50;
/// The first retry's delay; it doubles per attempt up to [`RETRY_MAX`].
const RETRY_BASE: Duration = Duration::from_secs(30);
const RETRY_MAX: Duration = Duration::from_secs(3600);

/// Where emails go.
#[derive(Clone, Debug)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// One `.eml` file per email in this directory.
    Files(PathBuf),
}

/// The email worker.
#[derive(Debug)]
pub struct Mailer {
    store: Store,
    transport: Transport,
    from: Mailbox,
    /// The file outbox's directory exists and its name is durable (made at the first
    /// email, once per process).
    outbox_made: AtomicBool,
}

impl Mailer {
    /// `smtp_url` None: the file outbox `outbox_dir`.
    pub fn new(
        store: Store,
        smtp_url: Option<&str>,
        outbox_dir: PathBuf,
        from: &str,
    ) -> anyhow::Result<Self> {
        let transport = match smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?
                    .timeout(Some(Duration::from_secs(10)))
                    .build(),
            ),
            None => Transport::Files(outbox_dir),
        };
        Ok(Self { store, transport, from: from.parse()?, outbox_made: AtomicBool::new(false) })
    }

    /// Sends the emails that are due; true when a full batch was found (more may wait).
    pub async fn step(&self) -> anyhow::Result<bool> {
        let now = store::now_ns();
        let due = self.store.due_emails(now, BATCH).await?;
        for email in &due {
            let outcome = self.send(email).await;
            let (error, retry_at) = match &outcome {
                Ok(()) => (None, None),
                Err(error) => {
                    let attempt = email.attempts + 1;
                    let retry_at = (attempt < ATTEMPTS_MAX).then(|| {
                        let delay =
                            crate::support::backoff(RETRY_BASE, attempt.clamp(0, 20) as u32, RETRY_MAX);
                        now + delay.as_nanos() as u64
                    });
                    tracing::warn!(email_id = %email.id, attempt, %error, "email not sent");
                    (Some(error.to_string()), retry_at)
                }
            };
            metrics::counter!("coffer_emails_total", "outcome" => if outcome.is_ok() { "sent" } else { "failed" })
                .increment(1);
            self.store.email_attempted(email.id, error.as_deref(), retry_at, store::now_ns()).await?;
        }
        Ok(due.len() == BATCH as usize)
    }

    async fn send(&self, email: &EmailRow) -> anyhow::Result<()> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(email.recipient.parse()?)
            .subject(&email.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(email.body.clone())?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(message).await?;
            }
            Transport::Files(dir) => {
                // Durable before the email is marked sent (synced, renamed into place, the
                // directory synced), and owner-only: it holds a customer's details.
                // The directory's own name too: a file synced into a directory whose entry a
                // power cut takes back is lost all the same.
                let make = (!self.outbox_made.load(Ordering::Acquire)).then(|| dir.clone());
                let path = dir.join(format!("{}-{}.eml", email.template, email.id));
                let contents = message.formatted();
                tokio::task::spawn_blocking(move || {
                    if let Some(dir) = make {
                        std::fs::create_dir_all(&dir)?;
                        crate::support::sync_directory_of(&dir)?;
                    }
                    crate::support::replace_owner_only(&path, &contents)
                })
                .await??;
                self.outbox_made.store(true, Ordering::Release);
            }
        }
        Ok(())
    }

    /// Sends until `shutdown`, looking for due emails every `interval`.
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
        crate::support::repeat("mail", interval, shutdown, || self.step()).await;
    }
}
