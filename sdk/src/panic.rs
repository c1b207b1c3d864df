//! Panics inside a plugin.
//!
//! Rust's default panic hook writes the message to WASI stderr, which the
//! host does not give plugins. The SDK replaces it, once per instance, with
//! a hook that sends the message through the host's `log` import; the panic
//! then aborts the instance (a trap), and the host ends only that channel,
//! with `phx_error`, and logs the message with the plugin's name.

#[cfg(target_arch = "wasm32")]
use std::sync::Once;

/// Install the logging panic hook, once. Called on entry to every export.
pub(crate) fn install_hook() {
    #[cfg(target_arch = "wasm32")]
    {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                crate::log::error(&format!("plugin panicked: {info}"));
            }));
        });
    }
}
