//! An object's alarms, messages and event subscriptions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_core::Stream;
use larder_proto::v1 as pb;

use super::{Alarm, ObjectEvent, ObjectHandle, errors_mapped, request_id};
use crate::ClientError;

impl ObjectHandle {
    /// Sets (or replaces) the alarm `name`, due at `at`; when due, the object's
    /// subscribers get an `alarm_fired` event carrying `payload`.
    pub async fn set_alarm(
        &self,
        name: &str,
        at: SystemTime,
        payload: impl Into<Vec<u8>>,
    ) -> Result<u64, ClientError> {
        let at_ms = at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.alarm_call(
            name,
            pb::set_alarm_request::When::AtUnixMs(at_ms),
            payload.into(),
        )
        .await
    }

    /// Sets the alarm `name` due `after` from now (by the node's clock).
    pub async fn set_alarm_in(
        &self,
        name: &str,
        after: Duration,
        payload: impl Into<Vec<u8>>,
    ) -> Result<u64, ClientError> {
        let in_ms = after.as_millis() as u64;
        self.alarm_call(
            name,
            pb::set_alarm_request::When::InMs(in_ms),
            payload.into(),
        )
        .await
    }

    async fn alarm_call(
        &self,
        name: &str,
        when: pb::set_alarm_request::When,
        payload: Vec<u8>,
    ) -> Result<u64, ClientError> {
        let req = pb::SetAlarmRequest {
            object: Some(self.object.clone()),
            name: name.to_string(),
            when: Some(when),
            payload,
            request_id: request_id(),
        };
        self.client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.rpc(ch).set_alarm(req).await?.into_inner().version) }
            })
            .await
    }

    pub async fn delete_alarms(&self, names: &[&str]) -> Result<u64, ClientError> {
        let req = pb::DeleteAlarmRequest {
            object: Some(self.object.clone()),
            names: names.iter().map(|n| n.to_string()).collect(),
            request_id: request_id(),
        };
        self.client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.rpc(ch).delete_alarm(req).await?.into_inner().version) }
            })
            .await
    }

    /// The object's alarms, in name order.
    pub async fn alarms(&self) -> Result<Vec<Alarm>, ClientError> {
        self.list_alarms("").await
    }

    /// The alarm `name`, if set.
    pub async fn alarm(&self, name: &str) -> Result<Option<Alarm>, ClientError> {
        Ok(self.list_alarms(name).await?.pop())
    }

    async fn list_alarms(&self, name: &str) -> Result<Vec<Alarm>, ClientError> {
        let req = pb::ListAlarmsRequest {
            object: Some(self.object.clone()),
            name: name.to_string(),
        };
        self.client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.rpc(ch).list_alarms(req).await?.into_inner().alarms) }
            })
            .await
    }

    /// Appends `message` to the object's event log (acknowledged once a majority holds
    /// it); returns its sequence number.
    pub async fn publish(&self, message: impl Into<Vec<u8>>) -> Result<u64, ClientError> {
        let req = pb::PublishRequest {
            object: Some(self.object.clone()),
            message: message.into(),
            request_id: request_id(),
        };
        self.client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.rpc(ch).publish(req).await?.into_inner().seq) }
            })
            .await
    }

    /// The object's events after `after_seq` (None: from now on), then live, in order
    /// and without duplicates; the node follows the object across failovers and moves.
    pub async fn subscribe(
        &self,
        after_seq: Option<u64>,
    ) -> Result<impl Stream<Item = Result<ObjectEvent, ClientError>> + use<>, ClientError> {
        let req = pb::SubscribeRequest {
            object: Some(self.object.clone()),
            after_seq,
        };
        let stream = self
            .client
            .with_retries(|ch| {
                let req = req.clone();
                async move { Ok(self.rpc(ch).subscribe(req).await?.into_inner()) }
            })
            .await?;
        Ok(errors_mapped(stream))
    }
}
