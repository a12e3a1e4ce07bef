//! `coffer.v1.WalletService`: the customer's wallet operations over gRPC. Each method
//! authenticates the customer's access token, decodes protobuf into
//! [`crate::wallet_api`]'s requests (the same operations, checks, rate limit and
//! idempotency keys as REST) and encodes the answers.
//!
//! A money-moving call's answer is what its idempotency key remembers, in the REST shape
//! ([`Answered`]): this layer decodes that JSON into the protobuf message (or the
//! remembered problem into a status), so a first answer and its replays are built the
//! same way. A replay carries `idempotent-replayed: true` in its response metadata
//! (in the status's metadata when the remembered answer is a refusal).

use prost::Message;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status, metadata::MetadataValue};
use uuid::Uuid;

use super::{
    idempotency_key,
    ledger::{decode_id, encode_id},
    problem_status, proto, require_customer, status,
};
use crate::{
    http::{
        AppState,
        error::{ApiError, FieldError, Problem},
        idempotency::{Answered, REPLAYED_HEADER},
    },
    ledger_api,
    wallet_api::{self, HistoryQuery, Keyed, Payment, PaymentView, SendMoney, To, TransferBody},
    wallets::{
        WalletKind,
        history::{CounterpartyKind, Operation, OperationKind, OperationStatus},
    },
};

/// The names the idempotency keys of this service's calls are held under (a key used
/// for one operation cannot be reused for another, nor for a REST request).
const TRANSFER_MONEY: &str = "/coffer.v1.WalletService/TransferMoney";
const DEPOSIT_MONEY: &str = "/coffer.v1.WalletService/DepositMoney";
const WITHDRAW: &str = "/coffer.v1.WalletService/Withdraw";

/// The gRPC wallet service, over the same state as the HTTP server.
#[derive(Debug, Clone)]
pub struct Wallets {
    state: AppState,
}

impl Wallets {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// A top-up (`DepositMoney`) or a withdrawal (`Withdraw`): `fields` takes the wallet
    /// id, the amount and the card token or payout destination from the message, whose
    /// bytes and `route` identify the request for its idempotency key.
    async fn pay<M: Message>(
        &self,
        request: Request<M>,
        kind: store::PaymentKind,
        route: &str,
        fields: fn(M) -> (Vec<u8>, u64, String),
    ) -> Result<Response<proto::Payment>, Status> {
        let customer_id = require_customer(&self.state, request.metadata())?;
        let key = idempotency_key(request.metadata())?;
        let message = request.into_inner();
        let body = message.encode_to_vec();
        let (wallet_id, amount, token) = fields(message);
        let mut errors = Vec::new();
        let wallet_id = decode_uuid(&wallet_id, "/wallet_id", &mut errors);
        ledger_api::reject(errors).map_err(status)?;
        let keyed = Keyed { customer_id, key: &key, route, body: &body };
        answered(
            wallet_api::pay(&self.state, keyed, Payment { kind, wallet_id, amount, token }).await,
            payment,
        )
    }
}

/// A wallet, transfer or payment id: 16 bytes (an empty field is the nil id, which
/// names nothing: NOT_FOUND).
fn decode_uuid(bytes: &[u8], field: &str, errors: &mut Vec<FieldError>) -> Uuid {
    Uuid::from_u128(decode_id(bytes, || field.to_owned(), errors))
}

fn encode_uuid(id: Uuid) -> Vec<u8> {
    encode_id(id.as_u128())
}

fn nonempty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// An RFC 3339 time of a REST answer, as nanoseconds since the epoch.
fn nanos(text: &str) -> Result<u64, Status> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|time| u64::try_from(time.unix_timestamp_nanos()).ok())
        .ok_or_else(|| status(ApiError::Internal(anyhow::anyhow!("an answer holds the time {text:?}"))))
}

/// A keyed call's answer as its protobuf message: the remembered REST body decoded and
/// converted, or the remembered refusal as a status; `idempotent-replayed: true` on a
/// replay.
fn answered<T: DeserializeOwned, P>(
    answered: Result<Answered, ApiError>,
    convert: fn(T) -> Result<P, Status>,
) -> Result<Response<P>, Status> {
    let Answered { status: http_status, body, replayed } = answered.map_err(status)?;
    let unreadable = |error: serde_json::Error| {
        status(ApiError::Internal(anyhow::anyhow!("a remembered answer is unreadable: {error}")))
    };
    let replay_mark = MetadataValue::from_static("true");
    if http_status >= 400 {
        let problem: Problem = serde_json::from_str(&body).map_err(unreadable)?;
        let mut refused = problem_status(&problem);
        if replayed {
            refused.metadata_mut().insert(REPLAYED_HEADER, replay_mark);
        }
        return Err(refused);
    }
    let message = convert(serde_json::from_str(&body).map_err(unreadable)?)?;
    let mut response = Response::new(message);
    if replayed {
        response.metadata_mut().insert(REPLAYED_HEADER, replay_mark);
    }
    Ok(response)
}

fn transfer(body: TransferBody) -> Result<proto::WalletTransfer, Status> {
    let status = match body.status.as_str() {
        "posted" => proto::WalletTransferStatus::Posted,
        _ => proto::WalletTransferStatus::Unspecified,
    };
    Ok(proto::WalletTransfer {
        id: encode_uuid(body.id),
        status: status.into(),
        amount: body.amount,
        currency: body.currency,
        from_wallet_id: encode_uuid(body.from_wallet_id),
        to_wallet_id: encode_uuid(body.to_wallet_id),
        description: body.description.unwrap_or_default(),
        created_at: nanos(&body.created_at)?,
    })
}

fn payment(view: PaymentView) -> Result<proto::Payment, Status> {
    let status = match view.status.as_str() {
        "pending" => proto::PaymentStatus::Pending,
        "succeeded" => proto::PaymentStatus::Succeeded,
        "failed" => proto::PaymentStatus::Failed,
        _ => proto::PaymentStatus::Unspecified,
    };
    Ok(proto::Payment {
        id: encode_uuid(view.id),
        wallet_id: encode_uuid(view.wallet_id),
        amount: view.amount,
        currency: view.currency,
        status: status.into(),
        failure_code: view.failure_code.unwrap_or_default(),
        created_at: nanos(&view.created_at)?,
        updated_at: nanos(&view.updated_at)?,
    })
}

fn wallet_type(kind: WalletKind) -> proto::WalletType {
    match kind {
        WalletKind::Wallet => proto::WalletType::Wallet,
        WalletKind::Savings => proto::WalletType::Savings,
        WalletKind::Business => proto::WalletType::Business,
        WalletKind::Tax => proto::WalletType::Tax,
        WalletKind::Escrow => proto::WalletType::Escrow,
        WalletKind::CreditCard => proto::WalletType::CreditCard,
    }
}

/// The proto value of each operation kind (and back, for the filter).
const OPERATION_TYPES: [(OperationKind, proto::OperationType); 10] = [
    (OperationKind::TransferIn, proto::OperationType::TransferIn),
    (OperationKind::TransferOut, proto::OperationType::TransferOut),
    (OperationKind::TopUp, proto::OperationType::TopUp),
    (OperationKind::Withdrawal, proto::OperationType::Withdrawal),
    (OperationKind::Fee, proto::OperationType::Fee),
    (OperationKind::Reversal, proto::OperationType::Reversal),
    (OperationKind::Payment, proto::OperationType::Payment),
    (OperationKind::CreditLine, proto::OperationType::CreditLine),
    (OperationKind::Conversion, proto::OperationType::Conversion),
    (OperationKind::Adjustment, proto::OperationType::Adjustment),
];

const OPERATION_STATUSES: [(OperationStatus, proto::OperationStatus); 4] = [
    (OperationStatus::Posted, proto::OperationStatus::Posted),
    (OperationStatus::Pending, proto::OperationStatus::Pending),
    (OperationStatus::Voided, proto::OperationStatus::Voided),
    (OperationStatus::Expired, proto::OperationStatus::Expired),
];

fn counterparty_type(kind: CounterpartyKind) -> proto::CounterpartyType {
    match kind {
        CounterpartyKind::Wallet => proto::CounterpartyType::Wallet,
        CounterpartyKind::CardSettlement => proto::CounterpartyType::CardSettlement,
        CounterpartyKind::Payouts => proto::CounterpartyType::Payouts,
        CounterpartyKind::Fees => proto::CounterpartyType::Fees,
        CounterpartyKind::CreditLines => proto::CounterpartyType::CreditLines,
        CounterpartyKind::Fx => proto::CounterpartyType::Fx,
        CounterpartyKind::Ledger => proto::CounterpartyType::Ledger,
    }
}

fn operation(operation: Operation) -> proto::Operation {
    let kind = OPERATION_TYPES.iter().find(|(kind, _)| *kind == operation.kind).map(|(_, value)| *value);
    let status = OPERATION_STATUSES.iter().find(|(status, _)| *status == operation.status).map(|(_, v)| *v);
    proto::Operation {
        id: encode_uuid(operation.transfer_id),
        wallet_id: encode_uuid(operation.wallet_id),
        r#type: kind.unwrap_or(proto::OperationType::Unspecified).into(),
        amount: operation.amount,
        currency: operation.currency,
        status: status.unwrap_or(proto::OperationStatus::Unspecified).into(),
        counterparty_type: counterparty_type(operation.counterparty).into(),
        counterparty_wallet_id: operation.counterparty_wallet_id.map(encode_uuid).unwrap_or_default(),
        description: operation.description.unwrap_or_default(),
        balance_after: operation.balance_after,
        created_at: operation.timestamp,
    }
}

/// The history filter of an enum value: `None` for UNSPECIFIED (no filter), a field
/// error for a value that names nothing filterable.
fn filter_of<T: Copy, P: Copy + PartialEq + Into<i32>>(
    value: i32,
    table: &[(T, P)],
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    if value == 0 {
        return None;
    }
    let found = table.iter().find(|(_, proto)| (*proto).into() == value).map(|(kind, _)| *kind);
    if found.is_none() {
        errors
            .push(FieldError { field: field.to_owned(), message: format!("{value} cannot be filtered on") });
    }
    found
}

#[tonic::async_trait]
impl proto::wallet_service_server::WalletService for Wallets {
    async fn transfer_money(
        &self,
        request: Request<proto::TransferMoneyRequest>,
    ) -> Result<Response<proto::WalletTransfer>, Status> {
        let customer_id = require_customer(&self.state, request.metadata())?;
        let key = idempotency_key(request.metadata())?;
        let message = request.into_inner();
        let body = message.encode_to_vec();
        let mut errors = Vec::new();
        let from_wallet_id = decode_uuid(&message.from_wallet_id, "/from_wallet_id", &mut errors);
        let to = match message.to {
            Some(proto::transfer_money_request::To::ToWalletId(id)) => {
                Some(To::Wallet(decode_uuid(&id, "/to_wallet_id", &mut errors)))
            }
            Some(proto::transfer_money_request::To::ToEmail(email)) => Some(To::Email(email)),
            None => None,
        };
        ledger_api::reject(errors).map_err(status)?;
        let request = SendMoney {
            from_wallet_id,
            to,
            amount: message.amount,
            description: nonempty(message.description),
        };
        let keyed = Keyed { customer_id, key: &key, route: TRANSFER_MONEY, body: &body };
        answered(wallet_api::transfer(&self.state, keyed, request).await, transfer)
    }

    async fn get_transfer(
        &self,
        request: Request<proto::GetTransferRequest>,
    ) -> Result<Response<proto::WalletTransfer>, Status> {
        let customer_id = require_customer(&self.state, request.metadata())?;
        let mut errors = Vec::new();
        let id = decode_uuid(&request.get_ref().transfer_id, "transfer_id", &mut errors);
        ledger_api::reject(errors).map_err(status)?;
        let view = self.state.wallets.transfer_view(customer_id, id).await.map_err(|e| status(e.into()))?;
        let view = view.ok_or_else(|| {
            status(ApiError::rejected(
                axum::http::StatusCode::NOT_FOUND,
                "transfer_not_found",
                "no such transfer",
            ))
        })?;
        Ok(Response::new(transfer(TransferBody::from(view))?))
    }

    async fn get_balance(
        &self,
        request: Request<proto::GetBalanceRequest>,
    ) -> Result<Response<proto::Wallet>, Status> {
        let customer_id = require_customer(&self.state, request.metadata())?;
        let mut errors = Vec::new();
        let id = decode_uuid(&request.get_ref().wallet_id, "wallet_id", &mut errors);
        ledger_api::reject(errors).map_err(status)?;
        let wallet = self.state.wallets.owned(customer_id, id).await.map_err(|e| status(e.into()))?;
        let balance = crate::wallets::Balance::of(&wallet);
        Ok(Response::new(proto::Wallet {
            id: encode_uuid(wallet.id),
            currency: wallet.currency.clone(),
            r#type: wallet_type(wallet.wallet_type.into()).into(),
            name: wallet.name.clone().unwrap_or_default(),
            credit_limit: wallet.credit_limit,
            balance: Some(proto::Balance {
                posted: balance.posted,
                pending: balance.pending,
                available: balance.available,
            }),
            created_at: wallet.created_at,
        }))
    }

    async fn deposit_money(
        &self,
        request: Request<proto::DepositMoneyRequest>,
    ) -> Result<Response<proto::Payment>, Status> {
        self.pay(request, store::PaymentKind::TopUp, DEPOSIT_MONEY, |message| {
            (message.wallet_id, message.amount, message.payment_method)
        })
        .await
    }

    async fn withdraw(
        &self,
        request: Request<proto::WithdrawRequest>,
    ) -> Result<Response<proto::Payment>, Status> {
        self.pay(request, store::PaymentKind::Withdrawal, WITHDRAW, |message| {
            (message.wallet_id, message.amount, message.destination)
        })
        .await
    }

    async fn list_operations(
        &self,
        request: Request<proto::ListOperationsRequest>,
    ) -> Result<Response<proto::ListOperationsResponse>, Status> {
        let customer_id = require_customer(&self.state, request.metadata())?;
        let message = request.into_inner();
        let mut errors = Vec::new();
        let wallet_id = (!message.wallet_id.is_empty())
            .then(|| decode_uuid(&message.wallet_id, "wallet_id", &mut errors));
        let kind = filter_of(message.r#type, &OPERATION_TYPES, "type", &mut errors);
        if let Some(kind) = kind
            && kind.selection().is_none()
        {
            errors.push(FieldError {
                field: "type".into(),
                message: format!("{} cannot be filtered on", kind.as_str()),
            });
        }
        let status_filter = filter_of(message.status, &OPERATION_STATUSES, "status", &mut errors);
        ledger_api::reject(errors).map_err(status)?;
        let nonzero = |value: u64| (value != 0).then_some(value);
        let query = HistoryQuery {
            wallet_id,
            kind,
            status: status_filter,
            from: nonzero(message.from),
            to: nonzero(message.to),
            amount_min: nonzero(message.amount_min),
            amount_max: nonzero(message.amount_max),
            limit: (message.page_size != 0).then_some(message.page_size),
            cursor: (!message.page_token.is_empty()).then_some(message.page_token.as_str()),
        };
        let page = wallet_api::history(&self.state, customer_id, query).await.map_err(status)?;
        Ok(Response::new(proto::ListOperationsResponse {
            operations: page.data.into_iter().map(operation).collect(),
            next_page_token: page.next_cursor.unwrap_or_default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation kind and status has its own proto value, named alike.
    #[test]
    fn operation_enums_map_one_to_one() {
        for (kind, value) in OPERATION_TYPES {
            let name = value.as_str_name().strip_prefix("OPERATION_TYPE_").unwrap().to_lowercase();
            assert_eq!(name, kind.as_str());
        }
        for (status, value) in OPERATION_STATUSES {
            let name = value.as_str_name().strip_prefix("OPERATION_STATUS_").unwrap().to_lowercase();
            assert_eq!(name, status.as_str());
        }
    }
}
