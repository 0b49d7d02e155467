use super::*;
use crate::clock::SystemClock;
use crate::domain::{Platform, TenantId};
use crate::memory::{connection_fixture, MemorySealer, MemoryTokenVault};
use std::sync::atomic::{AtomicU32, Ordering};

/// A token endpoint that rotates strictly: each refresh returns a new refresh token and the
/// one it replaced is dead from then on.
struct Rotating {
    live: Mutex<String>,
    calls: AtomicU32,
    delay: std::time::Duration,
    /// How long the answer of a refresh takes after the refresh is made (committed).
    answer_after: Mutex<std::time::Duration>,
    /// How many answers of made refreshes are lost (the caller sees no answer).
    lose_answers: AtomicU32,
}

impl Rotating {
    fn new(first: &str) -> Arc<Self> {
        Arc::new(Self {
            live: Mutex::new(first.to_string()),
            calls: AtomicU32::new(0),
            delay: std::time::Duration::from_millis(50),
            answer_after: Mutex::new(std::time::Duration::ZERO),
            lose_answers: AtomicU32::new(0),
        })
    }

    fn live(&self) -> String {
        lock(&self.live).clone()
    }
}

#[async_trait]
impl Refresher for Rotating {
    async fn refresh(&self, refresh_token: &str) -> Result<Tokens, RefreshError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(self.delay).await;
        let tokens = {
            let mut live = lock(&self.live);
            if *live != refresh_token {
                return Err(RefreshError::InvalidGrant("invalid_grant".into()));
            }
            *live = format!("refresh-{n}");
            Tokens {
                access_token: format!("access-{n}"),
                access_expires_at: Utc::now() + Duration::hours(1),
                refresh_token: live.clone(),
            }
        };
        // The refresh is made; its answer may be slow, or never arrive.
        let wait = *lock(&self.answer_after);
        tokio::time::sleep(wait).await;
        let lost = self.lose_answers.load(Ordering::SeqCst);
        if lost > 0 {
            self.lose_answers.store(lost - 1, Ordering::SeqCst);
            return Err(RefreshError::Unavailable("no answer".into()));
        }
        Ok(tokens)
    }
}

struct World {
    vault: Arc<MemoryTokenVault>,
    sealer: Arc<MemorySealer>,
    platform: Arc<Rotating>,
    connection: Connection,
}

fn world() -> World {
    let connection = connection_fixture(&TenantId::parse("t1").unwrap(), Platform::QuickBooks);
    World {
        vault: Arc::new(MemoryTokenVault::default()),
        sealer: Arc::new(MemorySealer::default()),
        platform: Rotating::new("seed"),
        connection,
    }
}

impl World {
    fn keeper(&self, seed: &str) -> TokenKeeper {
        self.keeper_with(
            seed,
            KeeperSettings {
                poll: std::time::Duration::from_millis(10),
                ..KeeperSettings::default()
            },
        )
    }

    fn keeper_with(&self, seed: &str, settings: KeeperSettings) -> TokenKeeper {
        TokenKeeper::new(
            self.vault.clone(),
            self.sealer.clone(),
            Arc::new(SystemClock),
            self.platform.clone(),
            &self.connection,
            Secret::new(seed),
            settings,
        )
    }

    /// The refresh token the vault holds now, opened.
    async fn stored_refresh_token(&self) -> String {
        let row = self.vault.load(self.connection.id).await.unwrap().unwrap();
        self.keeper("any")
            .open(&row.sealed.unwrap())
            .await
            .unwrap()
            .refresh_token
    }
}

#[tokio::test]
async fn two_workers_refreshing_at_once_make_one_refresh_and_share_its_tokens() {
    let w = world();
    let (a, b) = (w.keeper("seed"), w.keeper("seed"));
    let (x, y) = tokio::join!(a.access_token(), b.access_token());
    assert_eq!(x.unwrap(), "access-1");
    assert_eq!(y.unwrap(), "access-1");
    assert_eq!(w.platform.calls.load(Ordering::SeqCst), 1);
    assert_eq!(w.vault.version(w.connection.id), Some(1));
    assert_eq!(w.stored_refresh_token().await, w.platform.live());
}

#[tokio::test]
async fn a_live_access_token_is_reused_and_a_refused_one_is_replaced_once() {
    let w = world();
    let keeper = w.keeper("seed");
    assert_eq!(keeper.access_token().await.unwrap(), "access-1");
    assert_eq!(w.keeper("seed").access_token().await.unwrap(), "access-1");
    assert_eq!(w.platform.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        keeper.after_rejection("access-1").await.unwrap(),
        "access-2"
    );
    // Another worker that saw the same 401 uses the newer token instead of refreshing again.
    assert_eq!(
        w.keeper("seed").after_rejection("access-1").await.unwrap(),
        "access-2"
    );
    assert_eq!(w.platform.calls.load(Ordering::SeqCst), 2);
    assert_eq!(w.stored_refresh_token().await, w.platform.live());
}

#[tokio::test]
async fn a_dead_grant_marks_the_connection_needs_reauth_and_fails_fast() {
    let w = world();
    let err = w
        .keeper("a-token-intuit-no-longer-knows")
        .access_token()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PlatformError::Rejected(m) if m.starts_with(NEEDS_REAUTH)),
        "{err:?}"
    );
    let marks = w.vault.marks();
    assert_eq!(marks.len(), 1);
    assert!(
        marks[0].1.contains("connect the company again"),
        "{}",
        marks[0].1
    );
}

#[tokio::test]
async fn a_store_that_fails_for_a_moment_still_keeps_the_new_refresh_token() {
    let w = world();
    w.vault.fail_stores(2);
    assert_eq!(w.keeper("seed").access_token().await.unwrap(), "access-1");
    assert_eq!(w.stored_refresh_token().await, w.platform.live());
}

#[tokio::test]
async fn a_connection_given_a_new_refresh_token_starts_a_new_chain_from_it() {
    let w = world();
    w.keeper("seed").access_token().await.unwrap();
    // The user connects again: Intuit issues a new grant, the connection holds its token.
    *lock(&w.platform.live) = "reconnected".into();
    assert_eq!(
        w.keeper("reconnected").access_token().await.unwrap(),
        "access-2"
    );
    assert_eq!(w.stored_refresh_token().await, w.platform.live());
}

#[tokio::test]
async fn two_calls_of_one_keeper_at_once_make_one_refresh() {
    let w = world();
    let keeper = w.keeper("seed");
    let (x, y) = tokio::join!(keeper.access_token(), keeper.access_token());
    assert_eq!(x.unwrap(), y.unwrap());
    assert_eq!(w.platform.calls.load(Ordering::SeqCst), 1);
    assert_eq!(w.stored_refresh_token().await, w.platform.live());
}

#[tokio::test]
async fn a_refresh_that_outlives_its_lease_still_stores_its_tokens_and_the_worker_that_took_over_uses_them(
) {
    let w = world();
    // The platform makes the refresh at once but answers late, after the lease expired.
    *lock(&w.platform.answer_after) = std::time::Duration::from_millis(400);
    let settings = KeeperSettings {
        lease: Duration::milliseconds(100),
        wait: Duration::seconds(5),
        poll: std::time::Duration::from_millis(10),
        ..KeeperSettings::default()
    };
    let (slow, late) = (
        w.keeper_with("seed", settings.clone()),
        w.keeper_with("seed", settings),
    );
    let second = async {
        // Takes the expired lease over and sends the token the first refresh has spent.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        late.access_token().await
    };
    let (x, y) = tokio::join!(slow.access_token(), second);
    assert_eq!(x.unwrap(), "access-1");
    assert_eq!(
        y.unwrap(),
        "access-1",
        "the first refresh's tokens are used"
    );
    assert!(w.vault.marks().is_empty(), "{:?}", w.vault.marks());
    assert_eq!(w.stored_refresh_token().await, w.platform.live());
}

#[tokio::test]
async fn a_refresh_without_an_answer_keeps_its_lease_so_the_token_is_not_sent_again_at_once() {
    let w = world();
    w.platform.lose_answers.store(1, Ordering::SeqCst);
    let settings = KeeperSettings {
        wait: Duration::milliseconds(300),
        poll: std::time::Duration::from_millis(10),
        ..KeeperSettings::default()
    };
    let err = w
        .keeper_with("seed", settings.clone())
        .access_token()
        .await
        .unwrap_err();
    assert!(matches!(err, PlatformError::Unavailable(_)), "{err:?}");
    // Another worker right after does not send the same refresh token again: the lease of
    // the refresh in doubt holds until it expires.
    let err = w
        .keeper_with("seed", settings)
        .access_token()
        .await
        .unwrap_err();
    assert!(matches!(err, PlatformError::Unavailable(_)), "{err:?}");
    assert_eq!(w.platform.calls.load(Ordering::SeqCst), 1);
    assert!(w.vault.marks().is_empty());
}
