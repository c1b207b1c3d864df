//! A socket plugin run by its configuration (`socket_config` beside
//! `socket_plugin` in plume.toml), read through `plugin-config` in both
//! `connect` and `id`: it admits a connection whose `key` param is the
//! configured `key`, keeps the whole configuration in the socket's assigns
//! (`socket_config`, for a channel to show), and names the socket
//! `<id_prefix>:<user param>`.

use plume_sdk::{Assigns, ConnectInfo, Payload, SocketHandler, Value, config};

pub struct ConfiguredSocket;

fn socket_config() -> Result<Value, String> {
    config::get::<Value>().map_err(|err| err.to_string())
}

impl SocketHandler for ConfiguredSocket {
    fn connect(params: Payload, _info: ConnectInfo) -> Result<Assigns, String> {
        let config = socket_config()?;
        let params: Value = params.parse().map_err(|err| format!("params that are not JSON: {err}"))?;
        if params.get("key").is_none() || params.get("key") != config.get("key") {
            return Err("the key param is not the configured key".into());
        }
        let user = params.get("user").cloned().unwrap_or(Value::Null);
        Ok(Assigns::new().with("socket_config", config).with("user", user))
    }

    fn id(assigns: &Assigns) -> Option<String> {
        let prefix = socket_config().ok()?.get("id_prefix")?.as_str()?.to_owned();
        let user = assigns.get::<Value>("user")?;
        Some(format!("{prefix}:{}", user.as_str()?))
    }
}

plume_sdk::export_socket!(ConfiguredSocket);
