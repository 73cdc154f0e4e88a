//! How the receiver answers on one path, written as text on its command line and in
//! `POST /_respond`: `200`, `503`, `200,delay=50ms`, `429,retry-after=2`, `hang`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How the receiver answers every request on one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Answer `status` after `delay`, with `Retry-After: retry_after` when set.
    Answer {
        /// HTTP status.
        status: u16,
        /// Wait this long before answering (a slow receiver).
        delay: Duration,
        /// A `Retry-After` value in seconds.
        retry_after: Option<u64>,
    },
    /// Read the request and never answer (a receiver that hangs).
    Hang,
}

impl Behaviour {
    /// 200 at once.
    pub fn ok() -> Self {
        Self::status(200)
    }
    /// `status` at once.
    pub fn status(status: u16) -> Self {
        Behaviour::Answer {
            status,
            delay: Duration::ZERO,
            retry_after: None,
        }
    }
    /// Never answer.
    pub fn hang() -> Self {
        Behaviour::Hang
    }
    /// The same answer, `delay` later (no effect on [`Behaviour::Hang`]).
    pub fn after(self, delay: Duration) -> Self {
        match self {
            Behaviour::Answer {
                status,
                retry_after,
                ..
            } => Behaviour::Answer {
                status,
                delay,
                retry_after,
            },
            Behaviour::Hang => Behaviour::Hang,
        }
    }
    /// The same answer with `Retry-After: seconds`.
    pub fn retry_after(self, seconds: u64) -> Self {
        match self {
            Behaviour::Answer { status, delay, .. } => Behaviour::Answer {
                status,
                delay,
                retry_after: Some(seconds),
            },
            Behaviour::Hang => Behaviour::Hang,
        }
    }
}

/// A behaviour could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a receiver behaviour ({reason}); expected `hang` or STATUS[,delay=DURATION][,retry-after=SECONDS], e.g. `503` or `200,delay=50ms`")]
pub struct BehaviourError {
    text: String,
    reason: String,
}

impl FromStr for Behaviour {
    type Err = BehaviourError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason: &str| BehaviourError {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        if text == "hang" {
            return Ok(Behaviour::Hang);
        }
        let mut parts = text.split(',');
        let status: u16 = parts
            .next()
            .and_then(|s| s.trim().parse().ok())
            .filter(|s| (100..1000).contains(s))
            .ok_or_else(|| error("no status"))?;
        let mut behaviour = Behaviour::status(status);
        for part in parts {
            match part.trim().split_once('=') {
                Some(("delay", d)) => {
                    let delay = humantime::parse_duration(d).map_err(|e| error(&e.to_string()))?;
                    behaviour = behaviour.after(delay);
                }
                Some(("retry-after", s)) => {
                    let seconds = s.parse().map_err(|_| error("retry-after is not seconds"))?;
                    behaviour = behaviour.retry_after(seconds);
                }
                _ => return Err(error(&format!("unknown option {part:?}"))),
            }
        }
        Ok(behaviour)
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Behaviour::Hang => f.write_str("hang"),
            Behaviour::Answer {
                status,
                delay,
                retry_after,
            } => {
                write!(f, "{status}")?;
                if !delay.is_zero() {
                    write!(f, ",delay={}", humantime::format_duration(*delay))?;
                }
                if let Some(s) = retry_after {
                    write!(f, ",retry-after={s}")?;
                }
                Ok(())
            }
        }
    }
}

/// A `PATH=BEHAVIOUR` pair, as `hookline receiver --respond` takes it.
pub fn parse_route(text: &str) -> Result<(String, Behaviour), String> {
    let (path, behaviour) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected PATH=BEHAVIOUR, e.g. /down=503"))?;
    if !path.starts_with('/') {
        return Err(format!("{text:?}: the path must start with /"));
    }
    let behaviour = behaviour
        .parse()
        .map_err(|e: BehaviourError| e.to_string())?;
    Ok((path.to_string(), behaviour))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for text in ["200", "503", "200,delay=50ms", "429,retry-after=2", "hang"] {
            let b: Behaviour = text.parse().unwrap();
            assert_eq!(b.to_string(), text);
        }
        assert_eq!(
            "200,delay=1s,retry-after=3".parse::<Behaviour>().unwrap(),
            Behaviour::ok().after(Duration::from_secs(1)).retry_after(3)
        );
    }

    #[test]
    fn rejects_nonsense_with_the_reason() {
        for text in [
            "",
            "ok",
            "20",
            "200,delay=soon",
            "200,colour=red",
            "503,retry-after=x",
        ] {
            let e = text.parse::<Behaviour>().unwrap_err().to_string();
            assert!(e.contains("expected `hang`"), "{e}");
        }
        assert_eq!(
            parse_route("/down=503").unwrap(),
            ("/down".to_string(), Behaviour::status(503))
        );
        assert!(parse_route("down=503").is_err());
        assert!(parse_route("/down").is_err());
    }
}
