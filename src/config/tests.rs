//! Loading and validating configuration.

use super::*;

#[test]
fn defaults_are_valid() {
    let s = Config::default().validate().unwrap();
    assert_eq!(s.kafka.group_id, "hookline");
    assert_eq!(s.admin_listen.port(), 9464);
    assert!(s.admin.playground, "the playground is on by default");
}

#[test]
fn file_then_env_override() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "custom.toml",
            "[kafka]\nbrokers = \"a:1\"\ngroup_id = \"g\"\n[kafka.options]\n\"security.protocol\" = \"SSL\"\n",
        )?;
        jail.set_env("HOOKLINE_KAFKA__GROUP_ID", "from-env");
        jail.set_env("HOOKLINE_KAFKA__OPTIONS__SASL_MECHANISM", "PLAIN");
        jail.set_env("HOOKLINE_KAFKA__OPTIONS__SESSION_TIMEOUT_MS", "6000");
        jail.set_env(
            "HOOKLINE_KAFKA__OPTIONS__ENABLE_SSL_CERTIFICATE_VERIFICATION",
            "true",
        );
        jail.set_env("HOOKLINE_LOG", "debug"); // not configuration: ignored
        let s = Config::load(Some(Path::new("custom.toml"))).unwrap();
        assert_eq!(s.kafka.brokers, "a:1");
        assert_eq!(s.kafka.group_id, "from-env");
        assert_eq!(s.kafka.options["security.protocol"], "SSL");
        assert_eq!(s.kafka.options["sasl.mechanism"], "PLAIN");
        assert_eq!(s.kafka.options["session.timeout.ms"], "6000");
        assert_eq!(
            s.kafka.options["enable.ssl.certificate.verification"],
            "true"
        );
        Ok(())
    });
}

#[test]
fn bad_value_names_the_key() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("HOOKLINE_KAFKA__COMMIT_INTERVAL", "soon");
        let e = Config::load(None).unwrap_err().to_string();
        assert!(e.to_lowercase().contains("kafka.commit_interval"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        jail.set_env("HOOKLINE_KAFKA__COMMIT_INTERVAL", "1s");
        jail.set_env("HOOKLINE_ADMIN__LISTEN", "nowhere");
        let e = Config::load(None).unwrap_err().to_string();
        assert!(e.contains("admin.listen"), "{e}");
        Ok(())
    });
}

#[test]
fn file_variants_read_secrets_from_files() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("kafka-password", "s3cret 123\n")?;
        jail.create_file("proxy", "http://u:p@proxy.internal:3128")?;
        let dir = jail.directory().display().to_string();
        jail.set_env(
            "HOOKLINE_KAFKA__OPTIONS__SASL_PASSWORD_FILE",
            format!("{dir}/kafka-password"),
        );
        jail.set_env("HOOKLINE_DELIVERY__PROXY_FILE", format!("{dir}/proxy"));
        let s = Config::load(None).unwrap();
        assert_eq!(s.kafka.options["sasl.password"], "s3cret 123");
        assert!(!s.kafka.options.contains_key("sasl.password.file"));
        assert_eq!(s.delivery.proxy.unwrap().host(), "proxy.internal");

        jail.set_env("HOOKLINE_KAFKA__OPTIONS__SASL_PASSWORD", "also");
        let e = Config::load(None).unwrap_err().to_string();
        assert!(e.contains("both HOOKLINE_KAFKA__OPTIONS__SASL_PASSWORD and HOOKLINE_KAFKA__OPTIONS__SASL_PASSWORD_FILE are set"), "{e}");
        std::env::remove_var("HOOKLINE_KAFKA__OPTIONS__SASL_PASSWORD");
        jail.set_env("HOOKLINE_DELIVERY__PROXY_FILE", format!("{dir}/missing"));
        let e = Config::load(None).unwrap_err().to_string();
        assert!(
            e.contains("cannot read HOOKLINE_DELIVERY__PROXY_FILE="),
            "{e}"
        );
        Ok(())
    });
}

#[test]
fn a_bad_proxy_names_the_key() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("HOOKLINE_DELIVERY__PROXY", "ftp://proxy");
        let e = Config::load(None).unwrap_err().to_string();
        assert!(e.contains("delivery.proxy: scheme \"ftp\""), "{e}");
        Ok(())
    });
}

#[test]
fn the_playground_switch() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("HOOKLINE_ADMIN__PLAYGROUND", "false");
        assert!(!Config::load(None).unwrap().admin.playground);
        Ok(())
    });
    // In a jail too: other tests set HOOKLINE_* variables meanwhile, and a jail holds them off.
    figment::Jail::expect_with(|_| {
        let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/hookline.toml");
        let s = Config::load(Some(Path::new(deploy))).unwrap();
        assert!(
            !s.admin.playground,
            "the deployment example listens beyond loopback: no playground"
        );
        Ok(())
    });
}

#[test]
fn unknown_key_is_an_error() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("hookline.toml", "[kafka]\nbrokerz = \"x\"\n")?;
        let e = Config::load(None).unwrap_err().to_string();
        assert!(e.contains("brokerz"), "{e}");
        Ok(())
    });
}

#[test]
fn admin_tokens_and_the_subscriptions_key_come_from_files() {
    figment::Jail::expect_with(|jail| {
        let dir = jail.directory().display().to_string();
        jail.create_file("write", "w-0123456789abcdefgh\n")?;
        jail.create_file("read", "r-0123456789abcdefgh\n")?;
        jail.create_file("key", "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=\n")?;
        jail.set_env("HOOKLINE_ADMIN__WRITE_TOKEN_FILE", format!("{dir}/write"));
        jail.set_env("HOOKLINE_ADMIN__READ_TOKEN_FILE", format!("{dir}/read"));
        jail.set_env(
            "HOOKLINE_SUBSCRIPTIONS__SECRET_KEY_FILE",
            format!("{dir}/key"),
        );
        let s = Config::load(None).unwrap();
        assert_eq!(
            s.admin.write_token.unwrap().expose(),
            "w-0123456789abcdefgh"
        );
        assert_eq!(s.admin.read_token.unwrap().expose(), "r-0123456789abcdefgh");
        assert_eq!(s.subscriptions.secret_key, Some(SecretKey([42u8; 32])));
        assert_eq!(
            s.subscriptions.disable_after,
            Some(Duration::from_secs(5 * 86400))
        );

        jail.create_file("key", "too-short")?;
        let e = Config::load(None).unwrap_err().to_string();
        assert!(e.contains("subscriptions.secret_key"), "{e}");
        assert!(!e.contains("too-short"), "{e}");
        jail.create_file("key", "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=")?;
        jail.create_file("write", "short")?;
        let e = Config::load(None).unwrap_err().to_string();
        assert!(
            e.contains("admin.write_token: must have at least 16"),
            "{e}"
        );
        Ok(())
    });
}

#[test]
fn a_read_token_needs_a_write_token() {
    let config = AdminConfig {
        read_token: Some("r".repeat(20)),
        ..AdminConfig::default()
    };
    let e = config.validate().unwrap_err().to_string();
    assert!(
        e.contains("admin.read_token: needs admin.write_token"),
        "{e}"
    );
}

#[test]
fn numeric_and_boolean_kafka_options_are_taken_as_text() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "hookline.toml",
            "[kafka.options]\n\"fetch.min.bytes\" = 1\n\"enable.idempotence\" = true\n\"batch.size\" = \"1000\"\n",
        )?;
        jail.set_env("HOOKLINE_KAFKA__OPTIONS__FETCH_WAIT_MAX_MS", "100");
        jail.set_env("HOOKLINE_KAFKA__OPTIONS__SOCKET_NAGLE_DISABLE", "false");
        let s = Config::load(None).unwrap();
        let options = &s.kafka.options;
        assert_eq!(options["fetch.wait.max.ms"], "100");
        assert_eq!(options["socket.nagle.disable"], "false");
        assert_eq!(options["fetch.min.bytes"], "1");
        assert_eq!(options["enable.idempotence"], "true");
        assert_eq!(options["batch.size"], "1000");
        Ok(())
    });
}

#[test]
fn producer_defaults_yield_to_options_but_acks_is_all() {
    let mut kafka = KafkaConfig::default();
    let config = kafka.producer_config();
    assert_eq!(config.get("compression.type"), Some("lz4"));
    assert_eq!(config.get("acks"), Some("all"));
    kafka
        .options
        .insert("compression.type".into(), "zstd".into());
    kafka.options.insert("acks".into(), "1".into());
    let config = kafka.producer_config();
    assert_eq!(config.get("compression.type"), Some("zstd"));
    assert_eq!(config.get("acks"), Some("all"));
    assert_eq!(config.get("queue.buffering.max.kbytes"), Some("32768"));
}
