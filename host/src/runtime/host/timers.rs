//! `timers`: messages a channel sends itself, delivered to `handle-info`.

use super::HostState;
use crate::runtime::bindings::imports::timers::{Host, TimerError};
use crate::runtime::context::{Effect, check_json, next_timer_id};

impl HostState {
    fn check_message(&mut self, message: &str) -> Result<(), TimerError> {
        let call = self.call();
        let Some(scope) = &call.scope else {
            return Err(TimerError::NotInChannel);
        };
        let max = call.app.limits.max_timers_per_channel;
        if scope.timers.len() >= max {
            return Err(TimerError::Limit(format!(
                "a channel has at most {max} pending timers"
            )));
        }
        check_json(message).map_err(TimerError::InvalidJson)
    }
}

impl Host for HostState {
    fn send_after(&mut self, delay_ms: u64, message: String) -> Result<u64, TimerError> {
        self.check_message(&message)?;
        let id = next_timer_id();
        let call = self.call();
        if let Some(scope) = call.scope.as_mut() {
            scope.timers.insert(id);
        }
        call.effects.push(Effect::SendAfter { id, delay_ms, message });
        Ok(id)
    }

    fn cancel(&mut self, id: u64) -> bool {
        let call = self.call();
        let pending = call
            .scope
            .as_mut()
            .is_some_and(|scope| scope.timers.remove(&id));
        if pending {
            call.effects.push(Effect::Cancel(id));
        }
        pending
    }

    fn send_self(&mut self, message: String) -> Result<(), TimerError> {
        self.check_message(&message)?;
        self.call().effects.push(Effect::SendSelf(message));
        Ok(())
    }
}
