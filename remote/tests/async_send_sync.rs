//! The public handles and futures can move across threads, so the runtime can hold them in
//! actors and spawn them on a multi-threaded executor.

use amber_remote::{
    Cluster, DownReason, Frame, FrameCodec, FrameError, GossipStats, HandshakeError, Member,
    MemberStatus, MembershipConfig, NodeId, Transport, TransportConfig, TransportError,
    TransportEvent, TransportStats,
};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>(_: &T) {}

#[test]
fn handles_and_values_are_send_and_sync() {
    send_sync::<Transport>();
    send_sync::<TransportConfig>();
    send_sync::<TransportEvent>();
    send_sync::<TransportStats>();
    send_sync::<TransportError>();
    send_sync::<DownReason>();
    send_sync::<HandshakeError>();
    send_sync::<FrameError>();
    send_sync::<Frame>();
    send_sync::<FrameCodec>();
    send_sync::<NodeId>();
    send_sync::<MembershipConfig>();
    send_sync::<Member>();
    send_sync::<MemberStatus>();
    send_sync::<GossipStats>();
}

#[allow(dead_code, clippy::diverging_sub_expression, unreachable_code)]
fn futures_are_send(transport: Transport, node: NodeId, frame: Frame) {
    send(&Transport::bind(TransportConfig::new("n", "127.0.0.1:0".parse().unwrap(), vec![1; 16])));
    send(&transport.connect("127.0.0.1:1".parse().unwrap()));
    send(&transport.send(&node, &frame));
    send(&transport.shutdown());
    let config = TransportConfig::new("n", "127.0.0.1:0".parse().unwrap(), vec![1; 16]);
    let builder = amber_actors::ActorSystem::builder();
    send(&Cluster::join(builder, config, MembershipConfig::new([])));
}
