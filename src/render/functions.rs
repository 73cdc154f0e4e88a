//! Custom JMESPath functions that real payloads need, registered beside the standard ones in
//! one shared [`RUNTIME`] every rule expression is compiled with.
//!
//! Added: `upper`, `lower`, `trim`, `replace`, `split`, `default`, `concat`, `truncate`,
//! `lookup`, `now`, `format_time`, `to_epoch`, `rename_keys`, `pick`, `omit`, `items`,
//! `from_items`, `json`. The reference with examples is in `docs/rules.md`.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use jmespath::functions::{ArgumentType as T, CustomFunction, Signature};
use jmespath::{Context, ErrorReason, JmespathError, Rcvar, Runtime, RuntimeError, Variable};

/// Numbers at or above this are read as epoch milliseconds rather than seconds: 10^11 seconds
/// is the year 5138, while 10^11 milliseconds is 1973, so the two ranges never meet in practice.
const MILLIS_THRESHOLD: f64 = 1e11;

/// The runtime: standard functions plus hookline's. Built once; expressions borrow it.
pub static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    let mut rt = Runtime::new();
    rt.register_builtin_functions();
    register(&mut rt);
    rt
});

/// Whether `name` is a function an expression may call.
pub fn is_known(name: &str) -> bool {
    RUNTIME.get_function(name).is_some()
}

type Res = Result<Rcvar, JmespathError>;

fn def(
    rt: &mut Runtime,
    name: &str,
    inputs: Vec<T>,
    variadic: Option<T>,
    f: impl Fn(&[Rcvar], &Context<'_>) -> Res + Send + Sync + 'static,
) {
    rt.register_function(
        name,
        Box::new(CustomFunction::new(
            Signature::new(inputs, variadic),
            Box::new(move |args: &[Rcvar], ctx: &mut Context<'_>| f(args, ctx)),
        )),
    );
}

fn string(s: String) -> Res {
    Ok(Arc::new(Variable::String(s)))
}

/// A runtime failure reported the way the library reports type mismatches, so every
/// render error reads alike.
fn fail(ctx: &Context<'_>, position: usize, expected: &str, actual: String) -> JmespathError {
    JmespathError::from_ctx(
        ctx,
        ErrorReason::Runtime(RuntimeError::InvalidType {
            expected: expected.to_string(),
            actual,
            position,
        }),
    )
}

fn text(v: &Variable) -> String {
    match v {
        Variable::String(s) => s.clone(),
        Variable::Null => String::new(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn str_arg(args: &[Rcvar], i: usize) -> &str {
    // The signature has already checked the type.
    args[i].as_string().map(String::as_str).unwrap_or("")
}

fn register(rt: &mut Runtime) {
    def(rt, "upper", vec![T::String], None, |a, _| {
        string(str_arg(a, 0).to_uppercase())
    });
    def(rt, "lower", vec![T::String], None, |a, _| {
        string(str_arg(a, 0).to_lowercase())
    });
    def(rt, "trim", vec![T::String], None, |a, _| {
        string(str_arg(a, 0).trim().to_string())
    });
    def(
        rt,
        "replace",
        vec![T::String, T::String, T::String],
        None,
        |a, ctx| {
            let from = str_arg(a, 1);
            if from.is_empty() {
                return Err(fail(ctx, 1, "a non-empty string", "\"\"".into()));
            }
            string(str_arg(a, 0).replace(from, str_arg(a, 2)))
        },
    );
    def(rt, "split", vec![T::String, T::String], None, |a, ctx| {
        let sep = str_arg(a, 1);
        if sep.is_empty() {
            return Err(fail(ctx, 1, "a non-empty separator", "\"\"".into()));
        }
        let parts = str_arg(a, 0)
            .split(sep)
            .map(|p| Arc::new(Variable::String(p.to_string())))
            .collect();
        Ok(Arc::new(Variable::Array(parts)))
    });
    // `default(v, fallback)`: unlike `not_null`, an empty string also counts as missing,
    // because vendors send "" for absent fields (Netography's `site`, Wallarm's `remote_addr6`).
    def(rt, "default", vec![T::Any, T::Any], None, |a, _| {
        let missing = match &*a[0] {
            Variable::Null => true,
            Variable::String(s) => s.is_empty(),
            _ => false,
        };
        Ok(if missing { a[1].clone() } else { a[0].clone() })
    });
    def(rt, "concat", vec![], Some(T::Any), |a, _| {
        string(a.iter().map(|v| text(v)).collect())
    });
    def(
        rt,
        "truncate",
        vec![T::String, T::Number],
        None,
        |a, ctx| {
            let n = a[1].as_number().unwrap_or(0.0);
            if n < 0.0 {
                return Err(fail(ctx, 1, "a length of 0 or more", n.to_string()));
            }
            string(str_arg(a, 0).chars().take(n as usize).collect())
        },
    );
    def(
        rt,
        "lookup",
        vec![T::Object, T::Any],
        Some(T::Any),
        |a, ctx| {
            if a.len() > 3 {
                return Err(fail(ctx, 3, "at most 3 arguments", a.len().to_string()));
            }
            let key = text(&a[1]);
            let found = a[0].as_object().and_then(|o| o.get(&key)).cloned();
            Ok(found
                .or_else(|| a.get(2).cloned())
                .unwrap_or_else(|| Arc::new(Variable::Null)))
        },
    );
    def(rt, "now", vec![], None, |_, _| {
        string(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true))
    });
    def(
        rt,
        "format_time",
        vec![T::Union(vec![T::Number, T::String])],
        Some(T::String),
        |a, ctx| {
            let t = to_time(&a[0], ctx)?;
            match a.get(1) {
                None => string(t.to_rfc3339_opts(SecondsFormat::Millis, true)),
                Some(fmt) => string(strftime(&t, fmt.as_string().map_or("", |s| s), ctx)?),
            }
        },
    );
    def(
        rt,
        "to_epoch",
        vec![T::Union(vec![T::Number, T::String])],
        None,
        |a, ctx| {
            let t = to_time(&a[0], ctx)?;
            let secs = t.timestamp_millis() as f64 / 1000.0;
            Ok(Arc::new(Variable::Number(
                serde_json::Number::from_f64(secs).unwrap_or_else(|| 0.into()),
            )))
        },
    );
    def(
        rt,
        "rename_keys",
        vec![T::Object, T::Object],
        None,
        |a, _| {
            let (obj, names) = (a[0].as_object().unwrap(), a[1].as_object().unwrap());
            let mut out = BTreeMap::new();
            for (k, v) in obj {
                let name = match names.get(k).map(|n| &**n) {
                    Some(Variable::String(new)) => new.clone(),
                    _ => k.clone(),
                };
                out.insert(name, v.clone());
            }
            Ok(Arc::new(Variable::Object(out)))
        },
    );
    def(
        rt,
        "pick",
        vec![T::Object, T::TypedArray(Box::new(T::String))],
        None,
        |a, _| Ok(filter_keys(&a[0], &a[1], true)),
    );
    def(
        rt,
        "omit",
        vec![T::Object, T::TypedArray(Box::new(T::String))],
        None,
        |a, _| Ok(filter_keys(&a[0], &a[1], false)),
    );
    def(rt, "items", vec![T::Object], None, |a, _| {
        let pairs = a[0]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                Arc::new(Variable::Array(vec![
                    Arc::new(Variable::String(k.clone())),
                    v.clone(),
                ]))
            })
            .collect();
        Ok(Arc::new(Variable::Array(pairs)))
    });
    def(rt, "from_items", vec![T::Array], None, |a, ctx| {
        let mut out = BTreeMap::new();
        for item in a[0].as_array().unwrap() {
            match item.as_array().map(Vec::as_slice) {
                Some([k, v]) => {
                    out.insert(text(k), v.clone());
                }
                _ => {
                    return Err(fail(
                        ctx,
                        0,
                        "an array of [key, value] pairs",
                        item.to_string(),
                    ))
                }
            }
        }
        Ok(Arc::new(Variable::Object(out)))
    });
    def(rt, "json", vec![T::Any], None, |a, _| {
        string(serde_json::to_string(&*a[0]).unwrap_or_default())
    });
}

fn filter_keys(obj: &Rcvar, keys: &Rcvar, keep: bool) -> Rcvar {
    let keys: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k.as_string().map(String::as_str))
        .collect();
    let out = obj
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| keys.contains(&k.as_str()) == keep)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Arc::new(Variable::Object(out))
}

/// Reads an epoch number (seconds, or milliseconds when large) or an RFC 3339 string.
fn to_time(v: &Variable, ctx: &Context<'_>) -> Result<DateTime<Utc>, JmespathError> {
    let bad = || {
        fail(
            ctx,
            0,
            "epoch seconds/milliseconds or RFC 3339",
            v.to_string(),
        )
    };
    match v {
        Variable::Number(n) => {
            let n = n.as_f64().ok_or_else(bad)?;
            let millis = if n.abs() >= MILLIS_THRESHOLD {
                n
            } else {
                n * 1000.0
            };
            Utc.timestamp_millis_opt(millis as i64)
                .single()
                .ok_or_else(bad)
        }
        Variable::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// strftime that refuses a bad format instead of panicking inside `Display`.
fn strftime(t: &DateTime<Utc>, fmt: &str, ctx: &Context<'_>) -> Result<String, JmespathError> {
    use chrono::format::{Item, StrftimeItems};
    let items: Vec<Item<'_>> = StrftimeItems::new(fmt).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(fail(ctx, 1, "a valid strftime format", format!("{fmt:?}")));
    }
    Ok(t.format_with_items(items.into_iter()).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(expr: &str, data: serde_json::Value) -> Result<serde_json::Value, String> {
        let e = RUNTIME.compile(expr).map_err(|e| e.to_string())?;
        let out = e.search(data).map_err(|e| e.reason.to_string())?;
        Ok(serde_json::to_value(&*out).unwrap())
    }

    #[test]
    fn string_functions() {
        let d = serde_json::json!({"s": "Hello World", "e": ""});
        assert_eq!(eval("upper(s)", d.clone()).unwrap(), "HELLO WORLD");
        assert_eq!(eval("lower(s)", d.clone()).unwrap(), "hello world");
        assert_eq!(eval("trim(' x ')", d.clone()).unwrap(), "x");
        assert_eq!(
            eval("replace(s, 'o', '0')", d.clone()).unwrap(),
            "Hell0 W0rld"
        );
        assert_eq!(
            eval("split(s, ' ')", d.clone()).unwrap(),
            serde_json::json!(["Hello", "World"])
        );
        assert_eq!(eval("truncate(s, `5`)", d.clone()).unwrap(), "Hello");
        assert_eq!(
            eval("concat('a', `1`, null, s)", d.clone()).unwrap(),
            "a1Hello World"
        );
        assert!(eval("split(s, '')", d).unwrap_err().contains("separator"));
    }

    #[test]
    fn default_treats_empty_string_as_missing() {
        let d = serde_json::json!({"e": "", "z": 0, "x": "v"});
        assert_eq!(eval("default(e, 'fb')", d.clone()).unwrap(), "fb");
        assert_eq!(eval("default(missing, 'fb')", d.clone()).unwrap(), "fb");
        assert_eq!(eval("default(z, 'fb')", d.clone()).unwrap(), 0);
        assert_eq!(eval("default(x, 'fb')", d).unwrap(), "v");
    }

    #[test]
    fn lookup_with_and_without_default() {
        let d = serde_json::json!({"m": {"high": "error"}, "k": "high", "u": "nope"});
        assert_eq!(eval("lookup(m, k)", d.clone()).unwrap(), "error");
        assert_eq!(
            eval("lookup(m, u)", d.clone()).unwrap(),
            serde_json::Value::Null
        );
        assert_eq!(eval("lookup(m, u, 'info')", d).unwrap(), "info");
    }

    #[test]
    fn time_functions() {
        let d = serde_json::json!({"s": 1450893140, "ms": 1450893140148_i64, "iso": "2015-12-23T17:52:20Z"});
        assert_eq!(
            eval("format_time(s)", d.clone()).unwrap(),
            "2015-12-23T17:52:20.000Z"
        );
        assert_eq!(
            eval("format_time(ms)", d.clone()).unwrap(),
            "2015-12-23T17:52:20.148Z"
        );
        assert_eq!(
            eval("format_time(iso, '%Y-%m-%d')", d.clone()).unwrap(),
            "2015-12-23"
        );
        assert_eq!(eval("to_epoch(iso)", d.clone()).unwrap(), 1450893140.0);
        assert!(eval("format_time(s, '%Q')", d.clone())
            .unwrap_err()
            .contains("strftime"));
        assert!(eval("format_time('yesterday')", d).is_err());
        let now = eval("now()", serde_json::json!({})).unwrap();
        let parsed = DateTime::parse_from_rfc3339(now.as_str().unwrap()).unwrap();
        assert!(
            (Utc::now() - parsed.with_timezone(&Utc))
                .num_seconds()
                .abs()
                < 5
        );
    }

    #[test]
    fn object_functions() {
        let d = serde_json::json!({"o": {"srcip": "1.2.3.4", "dstip": "5.6.7.8", "x": 1}});
        assert_eq!(
            eval("rename_keys(o, `{\"srcip\": \"source_ip\"}`)", d.clone()).unwrap(),
            serde_json::json!({"source_ip": "1.2.3.4", "dstip": "5.6.7.8", "x": 1})
        );
        assert_eq!(
            eval("pick(o, ['x'])", d.clone()).unwrap(),
            serde_json::json!({"x": 1})
        );
        assert_eq!(
            eval("omit(o, ['x', 'dstip'])", d.clone()).unwrap(),
            serde_json::json!({"srcip": "1.2.3.4"})
        );
        assert_eq!(
            eval("from_items(items(o))", d.clone()).unwrap(),
            d["o"].clone()
        );
        assert_eq!(eval("json(o.x)", d).unwrap(), "1");
    }

    #[test]
    fn known_functions_include_standard_and_custom() {
        assert!(is_known("length"));
        assert!(is_known("format_time"));
        assert!(!is_known("no_such_function"));
    }
}
