//! SIGINT and SIGTERM, listened for from the moment a command starts.
//!
//! The handlers are registered when [`Shutdown::listen`] is called, not when the wait begins:
//! a process that is told to stop while it is still starting (an orchestrator stopping a pod
//! that has just been scheduled, a supervisor restarting a router that has just been
//! restarted) must stop as it would later, not die of the signal's default action.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// Both stop signals, registered.
pub struct Shutdown {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
}

impl Shutdown {
    /// Registers the handlers now. A signal that cannot be registered (no signal driver,
    /// which `main`'s runtime always has) is never received rather than failing the command.
    pub fn listen() -> Self {
        Shutdown {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Resolves on the first SIGINT or SIGTERM since [`Shutdown::listen`], including one
    /// that arrived before this was called.
    pub async fn received(&mut self) {
        tokio::select! {
            _ = recv(&mut self.interrupt) => {}
            _ = recv(&mut self.terminate) => {}
        }
    }
}

async fn recv(signal: &mut Option<Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
