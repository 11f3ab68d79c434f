//! Tests of the mount attributes: each attribute, and every error reported at once.

use super::*;

fn parse(pairs: &[(&str, &str)]) -> Result<MountAttributes, AttributeErrors> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    MountAttributes::parse(&serde_json::to_string(&map).unwrap())
}

/// The attributes, or their one error.
fn attrs(pairs: &[(&str, &str)]) -> Result<MountAttributes, AttributeError> {
    parse(pairs).map_err(|AttributeErrors(mut errors)| {
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.remove(0)
    })
}

fn only(errors: AttributeErrors) -> AttributeError {
    let AttributeErrors(mut errors) = errors;
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.remove(0)
}

#[test]
fn reads_pod_regions_and_objects() {
    let a = attrs(&[
        ("objects", "- objectName: x"),
        ("region", "us-east-1"),
        ("failoverRegion", "us-west-2"),
        (POD_NAME, "web-0"),
        (POD_NAMESPACE, "shop"),
        (SERVICE_ACCOUNT, "web"),
        ("secretProviderClass", "ignored"),
    ])
    .unwrap();
    assert_eq!(a.objects, "- objectName: x");
    assert_eq!(a.region.unwrap().as_str(), "us-east-1");
    assert_eq!(a.failover_region.unwrap().as_str(), "us-west-2");
    assert_eq!(a.pod.namespace, "shop");
    assert_eq!(a.pod.service_account, "web");
    assert_eq!(a.auth, AuthMode::Irsa);
    assert_eq!(a.translation, PathTranslation::Replace('_'));
}

#[test]
fn authentication_by_the_volumes_secret_is_opt_in_and_exclusive() {
    assert_eq!(attrs(&[]).unwrap().auth, AuthMode::Irsa);
    assert_eq!(
        attrs(&[("authentication", "nodePublishSecretRef")])
            .unwrap()
            .auth,
        AuthMode::SecretRef
    );
    assert_eq!(
        attrs(&[("authentication", "secret")]).unwrap_err(),
        AttributeError::Authentication("secret".into())
    );
    assert_eq!(
        attrs(&[
            ("authentication", "nodePublishSecretRef"),
            ("usePodIdentity", "true")
        ])
        .unwrap_err(),
        AttributeError::TwoAuthentications
    );
}

#[test]
fn a_role_to_assume_is_checked_with_its_external_id_and_duration() {
    assert_eq!(attrs(&[]).unwrap().assume, None);
    let a = attrs(&[
        ("assumeRoleArn", "arn:aws:iam::210987654321:role/reader"),
        ("assumeRoleExternalId", "team-a"),
        ("assumeRoleDuration", "30m"),
    ])
    .unwrap()
    .assume
    .unwrap();
    assert_eq!(a.duration, Duration::from_secs(1800));
    assert!(matches!(
        attrs(&[("assumeRoleArn", "reader")]),
        Err(AttributeError::AssumeRole(AssumeRoleError::Arn(_)))
    ));
    assert!(matches!(
        attrs(&[("assumeRoleExternalId", "team-a")]),
        Err(AttributeError::AssumeRole(AssumeRoleError::WithoutRole))
    ));
    assert!(matches!(
        attrs(&[
            ("assumeRoleArn", "arn:aws:iam::210987654321:role/reader"),
            ("assumeRoleDuration", "soon")
        ]),
        Err(AttributeError::AssumeRole(AssumeRoleError::Duration(_)))
    ));
}

#[test]
fn cache_ttl_is_a_go_duration_and_absent_by_default() {
    assert_eq!(attrs(&[]).unwrap().cache_ttl, None);
    assert_eq!(
        attrs(&[("cacheTTL", "1m30s")]).unwrap().cache_ttl,
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        attrs(&[("cacheTTL", "0s")]).unwrap().cache_ttl,
        Some(Duration::ZERO)
    );
    for bad in ["5", "-1s", "soon"] {
        assert_eq!(
            attrs(&[("cacheTTL", bad)]).unwrap_err(),
            AttributeError::CacheTtl(bad.into())
        );
    }
}

#[test]
fn attributes_must_be_a_json_object_of_strings() {
    for text in ["[]", r#"{"a": 1}"#, "{"] {
        assert!(matches!(
            MountAttributes::parse(text).map_err(only),
            Err(AttributeError::NotJson(_))
        ));
    }
}

#[test]
fn failover_region_is_checked_against_the_primary_by_regions_not_here() {
    // The primary may come from AWS_REGION or the node: `Regions::new` is the one
    // place that compares them.
    let a = attrs(&[("region", "us-east-1"), ("failoverRegion", "us-east-1")]).unwrap();
    let (primary, failover) = (a.region.unwrap(), a.failover_region);
    assert!(crate::domain::region::Regions::new(primary, failover).is_err());
}

#[test]
fn bad_region_names_are_refused() {
    assert!(matches!(
        attrs(&[("region", "US EAST")]),
        Err(AttributeError::Region(_))
    ));
}

#[test]
fn use_pod_identity_takes_go_booleans_only() {
    for t in ["1", "t", "T", "TRUE", "true", "True"] {
        let a = attrs(&[("usePodIdentity", t)]).unwrap();
        assert_eq!(
            a.auth,
            AuthMode::PodIdentity(AddressPreference::Auto),
            "{t}"
        );
    }
    for f in ["0", "f", "F", "FALSE", "false", "False"] {
        assert_eq!(
            attrs(&[("usePodIdentity", f)]).unwrap().auth,
            AuthMode::Irsa,
            "{f}"
        );
    }
    for bad in ["yes", "tRUE", "2"] {
        assert!(matches!(
            attrs(&[("usePodIdentity", bad)]),
            Err(AttributeError::UsePodIdentity(_))
        ));
    }
}

#[test]
fn preferred_address_type_any_case() {
    let a = attrs(&[("usePodIdentity", "true"), ("preferredAddressType", "IPv6")]).unwrap();
    assert_eq!(a.auth, AuthMode::PodIdentity(AddressPreference::Ipv6));
    let a = attrs(&[("usePodIdentity", "true"), ("preferredAddressType", "AUTO")]).unwrap();
    assert_eq!(a.auth, AuthMode::PodIdentity(AddressPreference::Auto));
    assert!(attrs(&[("usePodIdentity", "true"), ("preferredAddressType", "v6")]).is_err());
}

#[test]
fn path_translation_is_checked() {
    assert!(matches!(
        attrs(&[("pathTranslation", "ab")]),
        Err(AttributeError::Translation(_))
    ));
    assert_eq!(
        attrs(&[("pathTranslation", "false")]).unwrap().translation,
        PathTranslation::Off
    );
}

#[test]
fn tokens_by_audience() {
    let tokens = r#"{"sts.amazonaws.com":{"token":"abc","expirationTimestamp":"2026-01-01T00:00:00Z"},"pods.eks.amazonaws.com":{"token":""}}"#;
    let a = attrs(&[(TOKENS, tokens)]).unwrap();
    assert_eq!(a.tokens.get(IRSA_AUDIENCE).unwrap().expose(), "abc");
    assert!(
        a.tokens.get(POD_IDENTITY_AUDIENCE).is_none(),
        "an empty token counts as missing"
    );
    assert!(matches!(
        attrs(&[(TOKENS, "nope")]),
        Err(AttributeError::Tokens(_))
    ));
}

#[test]
fn a_token_in_the_wrong_shape_is_not_echoed() {
    let e = attrs(&[(TOKENS, r#"{"sts.amazonaws.com":"eyJsecret-token"}"#)]).unwrap_err();
    assert!(!e.to_string().contains("eyJ"), "{e}");
    assert!(e.to_string().contains("unexpected value type"), "{e}");
}

#[test]
fn token_parse_errors_do_not_echo_the_token() {
    let e = attrs(&[(
        TOKENS,
        r#"{"sts.amazonaws.com":{"token":"sekrit-token-value"#,
    )])
    .unwrap_err();
    assert!(!e.to_string().contains("sekrit"), "{e}");
}

#[test]
fn every_attribute_error_is_reported_at_once() {
    let AttributeErrors(errors) = parse(&[
        ("region", "US EAST"),
        ("pathTranslation", "ab"),
        ("usePodIdentity", "yes"),
        ("cacheTTL", "soon"),
        ("assumeRoleArn", "arn:aws:iam::210987654321:role/reader"),
        ("assumeRoleDuration", "forever"),
        (TOKENS, "nope"),
    ])
    .unwrap_err();
    assert_eq!(errors.len(), 6, "{errors:?}");
    assert!(matches!(errors[0], AttributeError::Region(_)));
    assert!(matches!(errors[1], AttributeError::Translation(_)));
    assert_eq!(errors[2], AttributeError::UsePodIdentity("yes".into()));
    assert!(matches!(errors[3], AttributeError::Tokens(_)));
    assert!(matches!(
        errors[4],
        AttributeError::AssumeRole(AssumeRoleError::Duration(_))
    ));
    assert_eq!(errors[5], AttributeError::CacheTtl("soon".into()));
}

#[test]
fn the_errors_read_as_one_message_joined_like_object_errors() {
    let e = parse(&[("cacheTTL", "soon"), ("authentication", "secret")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}; {}",
            AttributeError::Authentication("secret".into()),
            AttributeError::CacheTtl("soon".into())
        )
    );
}

#[test]
fn a_bad_use_pod_identity_does_not_add_errors_that_depend_on_it() {
    // Neither "two authentications" nor a check of preferredAddressType.
    let e = parse(&[
        ("usePodIdentity", "yes"),
        ("authentication", "nodePublishSecretRef"),
        ("preferredAddressType", "v6"),
    ])
    .unwrap_err();
    assert_eq!(e.0, vec![AttributeError::UsePodIdentity("yes".into())]);
}
