use super::*;
use crate::clock::FixedClock;
use crate::memory::{MemoryConnectionStore, MemoryIntuit, MemoryOAuthStates, MemorySealer};

const BASE: &str = "https://api.example.com";

struct World {
    connect: QuickBooksConnect,
    store: Arc<MemoryConnectionStore>,
    intuit: Arc<MemoryIntuit>,
    clock: Arc<FixedClock>,
    tenant: TenantId,
}

fn app() -> QuickBooksAppConfig {
    QuickBooksAppConfig {
        client_id: "AB-client".into(),
        client_secret: "app-secret".into(),
        authorize_url: oauth::AUTHORIZE_URL.into(),
        token_url: oauth::TOKEN_URL.into(),
        redirect_uri: None,
        environment: Some("sandbox".into()),
        api_url: None,
    }
}

fn world_with(app: Option<QuickBooksAppConfig>) -> World {
    let store = Arc::new(MemoryConnectionStore::default());
    let intuit = Arc::new(MemoryIntuit::default());
    let clock = Arc::new(FixedClock::new(Utc::now()));
    let connect = QuickBooksConnect::new(
        store.clone(),
        Arc::new(MemorySealer::default()),
        Arc::new(MemoryOAuthStates::default()),
        intuit.clone(),
        clock.clone(),
        RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        },
        app,
    );
    World {
        connect,
        store,
        intuit,
        clock,
        tenant: TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}")),
    }
}

fn world() -> World {
    world_with(Some(app()))
}

/// The `state` in a consent URL.
fn state_of(url: &str) -> String {
    url.split('&')
        .find_map(|p| p.strip_prefix("state="))
        .unwrap_or_default()
        .to_string()
}

impl World {
    /// The consent screen approved: the redirect back with a granted code.
    async fn approved(&self, code: &str) -> Callback {
        let (url, _) = self
            .connect
            .authorize(&self.tenant, BASE)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self.intuit.grant(code);
        Callback {
            code: Some(code.into()),
            state: Some(state_of(&url)),
            realm_id: Some("9341453050263456".into()),
            error: None,
        }
    }
}

#[tokio::test]
async fn the_consent_url_asks_for_the_accounting_scope_and_comes_back_to_our_callback() {
    let w = world();
    let (url, expires) = w
        .connect
        .authorize(&w.tenant, BASE)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(url.starts_with("https://appcenter.intuit.com/connect/oauth2?client_id=AB-client&response_type=code&scope=com.intuit.quickbooks.accounting&redirect_uri=https%3A%2F%2Fapi.example.com%2Foauth%2Fquickbooks%2Fcallback&state="), "{url}");
    assert_eq!(expires, w.clock.now() + Duration::minutes(10));
    // The state shows nothing of the tenant.
    assert!(!state_of(&url).contains("acme"));
}

#[tokio::test]
async fn a_callback_stores_the_refresh_token_on_a_new_connection_for_the_company() {
    let w = world();
    let back = w.approved("code-1").await;
    let connected = w
        .connect
        .callback(&back, BASE)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(connected.created);
    let c = connected.connection;
    assert_eq!(c.tenant_id, w.tenant);
    assert_eq!(c.platform, Platform::QuickBooks);
    assert_eq!(c.config_str("realm_id"), Some("9341453050263456"));
    assert_eq!(c.config_str("environment"), Some("sandbox"));
    assert_eq!(c.config_str("app"), Some("deployment"));
    assert!(c.secret_hints.contains_key("refresh_token"));
    assert_eq!(w.store.len(), 1);
    assert_eq!(w.intuit.issued(), 1);
}

#[tokio::test]
async fn connecting_the_same_company_again_renews_its_connection_and_clears_needs_reauth() {
    let w = world();
    let first = w
        .connect
        .callback(&w.approved("code-1").await, BASE)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut marked = first.connection.clone();
    marked.needs_reauth = Some("refused".into());
    w.store.seed(marked);
    let again = w
        .connect
        .callback(&w.approved("code-2").await, BASE)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!again.created);
    assert_eq!(again.connection.id, first.connection.id);
    assert_eq!(again.connection.needs_reauth, None);
    assert_eq!(w.store.len(), 1);
}

#[tokio::test]
async fn a_replayed_altered_or_expired_state_is_refused_and_stores_nothing() {
    let w = world();
    let back = w.approved("code-1").await;
    w.connect
        .callback(&back, BASE)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let replay = w.connect.callback(&back, BASE).await;
    assert!(
        matches!(replay, Err(ConnectError::BadState(m)) if m.contains("already used")),
        "{replay:?}"
    );

    let mut altered = w.approved("code-2").await;
    let text = altered.state.clone().unwrap_or_default();
    let flipped = if text.ends_with('A') { "B" } else { "A" };
    altered.state = Some(format!("{}{flipped}", &text[..text.len() - 1]));
    assert!(matches!(
        w.connect.callback(&altered, BASE).await,
        Err(ConnectError::BadState(_))
    ));
    altered.state = Some("not.a.state".into());
    assert!(matches!(
        w.connect.callback(&altered, BASE).await,
        Err(ConnectError::BadState(_))
    ));

    let late = w.approved("code-3").await;
    w.clock.advance(Duration::minutes(11));
    let expired = w.connect.callback(&late, BASE).await;
    assert!(
        matches!(expired, Err(ConnectError::BadState(m)) if m.contains("expired")),
        "{expired:?}"
    );
    assert_eq!(w.store.len(), 1);
    assert_eq!(w.intuit.issued(), 1);
}

#[tokio::test]
async fn a_declined_consent_or_a_refused_code_connects_nothing() {
    let w = world();
    let mut declined = w.approved("code-1").await;
    declined.error = Some("access_denied".into());
    declined.code = None;
    let r = w.connect.callback(&declined, BASE).await;
    assert!(
        matches!(&r, Err(ConnectError::Refused(m)) if m.contains("access_denied")),
        "{r:?}"
    );
    let mut unknown = w.approved("code-2").await;
    unknown.code = Some("a-code-intuit-never-issued".into());
    let r = w.connect.callback(&unknown, BASE).await;
    assert!(
        matches!(&r, Err(ConnectError::Refused(m)) if m.contains("invalid_grant")),
        "{r:?}"
    );
    let down = w.approved("code-3").await;
    w.intuit.set_down(true);
    assert!(matches!(
        w.connect.callback(&down, BASE).await,
        Err(ConnectError::Unavailable(_))
    ));
    assert!(w.store.is_empty());
}

#[tokio::test]
async fn without_a_deployment_app_there_is_nothing_to_authorize_with() {
    let w = world_with(None);
    assert_eq!(
        w.connect.authorize(&w.tenant, BASE).await.err(),
        Some(ConnectError::NotConfigured)
    );
}
