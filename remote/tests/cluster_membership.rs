//! A cluster that forms by itself (three clusters in one process, over 127.0.0.1): nodes
//! given one seed learn every member through gossip and link to each; a member that shuts
//! down is seen leave, one cut off from gossip is declared down (its link closed, its
//! watchers told `NodeDown`), and one that restarts under its name rejoins as a new
//! incarnation.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amber_actors::{Actor, ActorSystem, AskError, Context, Down, ExitReason};
use amber_remote::{
    Cluster, ClusterError, ClusterEvent, Member, MemberStatus, MembershipConfig, NodeId,
    ReconnectPolicy, TransportConfig,
};
use support::watcher::watcher;
use tokio::net::UdpSocket;
use tokio::sync::broadcast;

const SECRET: &[u8] = b"cluster membership test secret";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Frequent gossip, and a failure detector lenient enough for a loaded machine (a node
/// starved for a moment is not declared down): the cluster forms and leaves through gossip,
/// not through timeouts.
fn membership(seeds: &[SocketAddr]) -> MembershipConfig {
    MembershipConfig::new(seeds.iter().copied())
        .with_failure_detector(ms(200), ms(100), ms(3000))
        .with_gossip_interval(ms(50))
}

/// Fast failure detection: a member that stops answering is declared down within about a
/// second.
fn fast_membership(seeds: &[SocketAddr]) -> MembershipConfig {
    membership(seeds).with_failure_detector(ms(100), ms(50), ms(1000))
}

/// Runs `fut`, failing the test with `what` if it takes longer than 20 s.
async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(20), fut).await {
        Ok(output) => output,
        Err(_) => panic!("no progress in 20 s: {what}"),
    }
}

async fn join_at(name: &str, addr: &str, membership: MembershipConfig) -> Cluster {
    let config = TransportConfig::new(name, addr.parse().unwrap(), SECRET.to_vec())
        .with_heartbeat(ms(100), ms(1000))
        .with_reconnect(Some(ReconnectPolicy::new(ms(10), ms(100))));
    let builder = ActorSystem::builder().ask_timeout(Duration::from_secs(5));
    let node = Cluster::join(builder, config, membership).await.expect("join");
    let _ = node.system().spawn_named("echo", Echo { node: name.to_owned() }).unwrap();
    node
}

async fn join(name: &str, seeds: &[SocketAddr]) -> Cluster {
    join_at(name, "127.0.0.1:0", membership(seeds)).await
}

/// Waits (at most 20 s) until `node`'s members satisfy `cond`, on the members' watch.
async fn members_until(node: &Cluster, cond: impl Fn(&[Member]) -> bool) -> Vec<Member> {
    let mut watch = node.members_watch();
    let what = format!("{}'s members", node.node());
    within(&what, watch.wait_for(|m| cond(m))).await.expect("the cluster is alive").clone()
}

/// Every one of `names` is a member, alive and linked.
fn all_linked(names: &[&str]) -> impl Fn(&[Member]) -> bool {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    move |members: &[Member]| {
        members.len() == names.len()
            && members
                .iter()
                .zip(&names)
                .all(|(m, n)| m.node.as_str() == n && m.status == MemberStatus::Alive && m.linked)
    }
}

fn status_of(members: &[Member], node: &str) -> Option<MemberStatus> {
    members.iter().find(|m| m.node.as_str() == node).map(|m| m.status)
}

/// The next event about `node` that `pick` keeps.
async fn next_event<T>(
    events: &mut broadcast::Receiver<ClusterEvent>,
    mut pick: impl FnMut(&ClusterEvent) -> Option<T>,
) -> T {
    within(concat!("line ", line!()), async {
        loop {
            let event = events.recv().await.expect("the cluster is alive");
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    })
    .await
}

/// Answers with its node's name and what it was sent.
struct Echo {
    node: String,
}

impl Actor for Echo {
    type Msg = String;
    type Reply = String;
    async fn handle(&mut self, s: String, _: &mut Context<Self>) -> String {
        format!("{}:{s}", self.node)
    }
}

/// a, then b and c given only a as their seed; waits until all three are linked.
async fn three() -> (Cluster, Cluster, Cluster) {
    let a = join("a", &[]).await;
    let b = join("b", &[a.local_addr()]).await;
    let c = join("c", &[a.local_addr()]).await;
    for node in [&a, &b, &c] {
        members_until(node, all_linked(&["a", "b", "c"])).await;
    }
    (a, b, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_given_one_seed_learn_each_other_and_talk() {
    let (a, b, c) = three().await;
    let nodes = [&a, &b, &c];
    for from in nodes {
        for to in nodes.iter().filter(|to| to.node() != from.node()) {
            let echo = within(concat!("line ", line!()), from.lookup::<Echo>(to.node(), "echo"))
                .await
                .expect("lookup across a link made by the membership");
            let said = within(concat!("line ", line!()), echo.ask(format!("from {}", from.node())))
                .await
                .unwrap();
            assert_eq!(said, format!("{}:from {}", to.node(), from.node()));
            echo.tell("tell".into()).await.expect("tell");
        }
    }
    // Each member knows the others' link and gossip addresses and incarnations.
    let seen_by_b = b.members();
    let a_in_b = seen_by_b.iter().find(|m| m.node.as_str() == "a").unwrap();
    assert_eq!((a_in_b.addr, a_in_b.gossip), (a.local_addr(), a.local_addr()));
    assert_eq!(a_in_b.system, a.system().id());
    // Gossip flowed both ways, and a healthy cluster rejects none of it.
    for node in nodes {
        let stats = node.gossip_stats();
        assert!(stats.sent > 0 && stats.received > 0, "{}: {stats:?}", node.node());
        assert_eq!(stats.rejected, 0, "{}: {stats:?}", node.node());
    }
    // One link per pair, made by the membership.
    for node in nodes {
        let mut linked = node.nodes();
        linked.sort();
        assert_eq!(linked.len(), 2, "{}: {linked:?}", node.node());
    }
    for node in nodes {
        within(concat!("line ", line!()), node.shutdown()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_shuts_down_is_seen_leave_and_its_watchers_hear_node_down() {
    let (a, b, c) = three().await;
    let mut events = a.subscribe();
    let echo_c = within(concat!("line ", line!()), a.lookup::<Echo>(&NodeId::from("c"), "echo"))
        .await
        .unwrap();
    let (w, mut downs) = watcher(&a);
    within(concat!("line ", line!()), w.ask(echo_c.clone())).await.unwrap();
    // The watch is registered on c before c goes.
    within(concat!("line ", line!()), async {
        while c.watched_by_remote() != 1 {
            tokio::task::yield_now().await;
        }
    })
    .await;

    within(concat!("line ", line!()), c.shutdown()).await;
    let left = |e: &ClusterEvent| match e {
        ClusterEvent::MemberLeft { node } if node.as_str() == "c" => Some(()),
        _ => None,
    };
    next_event(&mut events, left).await;
    // c stops its actors before it leaves: a hears the real reason, unless the link closed
    // first (a, seeing c leave, closes it), and then NodeDown.
    let down = within(concat!("line ", line!()), downs.recv()).await.unwrap();
    assert_eq!(down.actor, echo_c.id());
    let either = [ExitReason::Shutdown, ExitReason::NodeDown("c".into())];
    assert!(either.contains(&down.reason), "{down:?}");
    assert_eq!(
        within(concat!("line ", line!()), echo_c.ask("late".into())).await,
        Err(AskError::NodeDown("c".into()))
    );
    for node in [&a, &b] {
        let members = members_until(node, |m| status_of(m, "c") == Some(MemberStatus::Left)).await;
        assert_eq!(status_of(&members, "a"), Some(MemberStatus::Alive));
        assert_eq!(status_of(&members, "b"), Some(MemberStatus::Alive));
    }
    within(concat!("line ", line!()), a.shutdown()).await;
    within(concat!("line ", line!()), b.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_under_its_name_rejoins_as_a_new_incarnation() {
    let (a, b, c) = three().await;
    let c_addr = c.local_addr();
    let old_system = c.system().id();
    let old_echo = within(concat!("line ", line!()), a.lookup::<Echo>(&NodeId::from("c"), "echo"))
        .await
        .unwrap();
    let mut events = a.subscribe();
    within(concat!("line ", line!()), c.shutdown()).await;
    members_until(&a, |m| status_of(m, "c") == Some(MemberStatus::Left)).await;

    // Back on the same address, given b as its seed this time.
    let c = join_at("c", &c_addr.to_string(), membership(&[b.local_addr()])).await;
    let new_system = c.system().id();
    assert_ne!(new_system, old_system);
    for node in [&a, &b, &c] {
        let members = members_until(node, all_linked(&["a", "b", "c"])).await;
        let seen = members.iter().find(|m| m.node.as_str() == "c").unwrap();
        assert_eq!(seen.system, new_system, "{} sees the new incarnation", node.node());
    }
    // The membership saw the new incarnation up, and its link introduced it as a restart
    // (in either order: a link may come up before the gossip that names it).
    let (mut up, mut restarted) = (None, false);
    while up.is_none() || !restarted {
        match next_event(&mut events, |e| Some(e.clone())).await {
            ClusterEvent::MemberUp { node, addr } if node.as_str() == "c" => up = Some(addr),
            ClusterEvent::Restarted { node } if node.as_str() == "c" => restarted = true,
            _ => {}
        }
    }
    assert_eq!(up, Some(c_addr));
    // The old incarnation's actors are gone; the new one's answer.
    assert_eq!(
        within(concat!("line ", line!()), old_echo.ask("old".into())).await,
        Err(AskError::Stopped)
    );
    let echo = within(concat!("line ", line!()), a.lookup::<Echo>(&NodeId::from("c"), "echo"))
        .await
        .unwrap();
    assert_eq!(within(concat!("line ", line!()), echo.ask("new".into())).await.unwrap(), "c:new");
    for node in [&a, &b, &c] {
        within(concat!("line ", line!()), node.shutdown()).await;
    }
}

/// Forwards datagrams sent to it to a target, until cut: stands for the network path to one
/// node's gossip socket.
struct UdpRelay {
    addr: SocketAddr,
    open: Arc<Mutex<Option<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl UdpRelay {
    async fn start() -> UdpRelay {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let open: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let target = open.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0; 2048];
            while let Ok((len, _)) = socket.recv_from(&mut buf).await {
                let to = *target.lock().unwrap();
                if let Some(to) = to {
                    let _ = socket.send_to(&buf[..len], to).await;
                }
            }
        });
        UdpRelay { addr, open, task }
    }

    fn forward_to(&self, to: Option<SocketAddr>) {
        *self.open.lock().unwrap() = to;
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cut_off_from_gossip_is_declared_down_and_its_link_closed() {
    let a = join_at("a", "127.0.0.1:0", fast_membership(&[])).await;
    let mut events = a.subscribe();
    let b = join_at("b", "127.0.0.1:0", fast_membership(&[a.local_addr()])).await;
    // c's gossip reaches it only through the relay; its link stays direct and healthy.
    let relay = UdpRelay::start().await;
    let config = TransportConfig::new("c", "127.0.0.1:0".parse().unwrap(), SECRET.to_vec())
        .with_heartbeat(ms(100), ms(1000));
    let mut gossip_via_relay = fast_membership(&[a.local_addr()]);
    gossip_via_relay.advertise_gossip = Some(relay.addr);
    let c = Cluster::join(ActorSystem::builder(), config, gossip_via_relay).await.unwrap();
    relay.forward_to(Some(c.local_addr()));
    c.system().spawn_named("echo", Echo { node: "c".into() }).unwrap();
    for node in [&a, &b, &c] {
        members_until(node, all_linked(&["a", "b", "c"])).await;
    }
    let echo_c = within("lookup", a.lookup::<Echo>(&NodeId::from("c"), "echo")).await.unwrap();
    let (w, mut downs) = watcher(&a);
    within("watch", w.ask(echo_c.clone())).await.unwrap();

    relay.forward_to(None);
    // a and b declare c down and close their links to it (or c, which hears no answers any
    // more and so holds a and b down, closed them first); a link that comes back (a redials
    // it) is closed again while c is held down.
    let down_unlinked = |m: &[Member]| {
        m.iter().any(|m| m.node.as_str() == "c" && m.status == MemberStatus::Down && !m.linked)
    };
    members_until(&a, down_unlinked).await;
    members_until(&b, down_unlinked).await;
    let heard = within("the watcher's Down", downs.recv()).await.unwrap();
    assert_eq!(heard, Down { actor: echo_c.id(), reason: ExitReason::NodeDown("c".into()) });
    assert_eq!(within("ask", echo_c.ask("late".into())).await, Err(AskError::NodeDown("c".into())));
    // Subscribed before c was seen up, so c's last fall is among the events.
    let mut declared = false;
    while let Ok(event) = events.try_recv() {
        declared |= matches!(&event, ClusterEvent::MemberDown { node } if node.as_str() == "c");
    }
    assert!(declared, "a reported c down");
    for node in [&a, &b, &c] {
        within("shutdown", node.shutdown()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_membership_settings_are_refused_with_typed_errors() {
    let config = |name: &str, listen: &str| {
        TransportConfig::new(name, listen.parse().unwrap(), SECRET.to_vec())
    };
    let refused = |result: Result<Cluster, ClusterError>| match result {
        Ok(_) => panic!("joined with unusable settings"),
        Err(e) => e,
    };
    // Timers SWIM cannot run with.
    let backwards = membership(&[]).with_failure_detector(ms(100), ms(100), ms(1000));
    let e =
        refused(Cluster::join(ActorSystem::builder(), config("x", "127.0.0.1:0"), backwards).await);
    assert!(matches!(e, ClusterError::Membership(_)), "{e}");
    // Listening everywhere, without saying where the others reach this node.
    let e = refused(
        Cluster::join(ActorSystem::builder(), config("y", "0.0.0.0:0"), membership(&[])).await,
    );
    assert!(matches!(e, ClusterError::Membership(why) if why.contains("advertise")), "{e}");
    // A gossip port already taken.
    let taken = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let elsewhere = membership(&[]).with_gossip(taken.local_addr().unwrap());
    let e =
        refused(Cluster::join(ActorSystem::builder(), config("z", "127.0.0.1:0"), elsewhere).await);
    assert!(matches!(e, ClusterError::Gossip(_)), "{e}");
}

/// Reachability one way only: `a` (the first-named of the pair, the one that dials) cannot
/// reach `b`'s advertised link address (nothing listens there), while `b` can reach `a`.
/// Once the pair stays unlinked for a while, `b` dials too: they link, and talk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_links_when_only_the_second_named_node_can_reach_the_other() {
    let a = join("a", &[]).await;
    // An address nothing listens on: bound, then let go.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut config = membership(&[a.local_addr()]);
    config.advertise = Some(closed);
    let b = join_at("b", "127.0.0.1:0", config).await;
    members_until(&a, all_linked(&["a", "b"])).await;
    members_until(&b, all_linked(&["a", "b"])).await;
    let echo = within("lookup", a.lookup::<Echo>(b.node(), "echo")).await.expect("b's echo");
    let said = within("an ask over the link b made", echo.ask("hi".into())).await.unwrap();
    assert_eq!(said, "b:hi");
    within("shutdown", b.shutdown()).await;
    within("shutdown", a.shutdown()).await;
}
