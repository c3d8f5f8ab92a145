//! The proxy mesh over real sockets: a grudge drops exactly the traffic it names, on
//! connections opened by either side, and healing restores every link.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use nemesis::mesh::ProxyMesh;
use nemesis::partition;
use node::protocol::frame_codec;
use node::raft::NodeId;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

type Conn = Framed<TcpStream, LengthDelimitedCodec>;

/// A stand-in for a node's peer port: answers each frame with "re:" + the frame.
struct PeerPort {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for PeerPort {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn peer_port() -> PeerPort {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((s, _)) = l.accept().await {
            conns.spawn(async move {
                let mut f = Framed::new(s, frame_codec());
                while let Some(Ok(frame)) = f.next().await {
                    let mut out = b"re:".to_vec();
                    out.extend_from_slice(&frame);
                    if f.send(Bytes::from(out)).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    PeerPort { addr, task }
}

async fn connect(addr: SocketAddr) -> Conn {
    let s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    Framed::new(s, frame_codec())
}

/// Sends `msg` and returns the answer, or `None` if none came within `wait`.
async fn ask(c: &mut Conn, msg: &str, wait: Duration) -> Option<String> {
    c.send(Bytes::from(msg.to_string())).await.unwrap();
    match tokio::time::timeout(wait, c.next()).await {
        Ok(Some(Ok(f))) => Some(String::from_utf8(f.to_vec()).unwrap()),
        _ => None,
    }
}

const QUIET: Duration = Duration::from_millis(200);
const LONG: Duration = Duration::from_secs(5);

#[tokio::test]
async fn grudge_drops_exactly_the_named_traffic() {
    let ids: Vec<NodeId> = vec![1, 2, 3];
    let mut ports = BTreeMap::new();
    let mut targets = BTreeMap::new();
    for &i in &ids {
        let p = peer_port().await;
        targets.insert(i, p.addr);
        ports.insert(i, p);
    }
    let mesh = ProxyMesh::start(&targets, 11).await.unwrap();

    // Every node connected to every other, through its own proxy.
    let mut conns = BTreeMap::new();
    for &a in &ids {
        for &b in &ids {
            if a != b {
                let mut c = connect(mesh.addr_for(a, b).unwrap()).await;
                assert_eq!(ask(&mut c, "hi", LONG).await.as_deref(), Some("re:hi"));
                conns.insert((a, b), c);
            }
        }
    }

    // Node 1 becomes deaf: it still sends, but hears no one.
    mesh.apply_grudge(&partition::one_way_deaf(&ids, 1).unwrap())
        .unwrap();
    // 1 -> 2 arrives, but 2's answer to 1 (on 1's connection) is lost.
    let c12 = conns.get_mut(&(1, 2)).unwrap();
    assert_eq!(ask(c12, "x", QUIET).await, None);
    // 2 -> 1 on 2's own connection is lost.
    let c21 = conns.get_mut(&(2, 1)).unwrap();
    assert_eq!(ask(c21, "y", QUIET).await, None);
    // 2 <-> 3 untouched.
    let c23 = conns.get_mut(&(2, 3)).unwrap();
    assert_eq!(ask(c23, "z", LONG).await.as_deref(), Some("re:z"));
    // The proxies saw 1's frame to 2 pass, and dropped 2's answer.
    let p12 = mesh.proxy(1, 2).unwrap();
    assert!(p12.stats(nemesis::Direction::ToTarget).forwarded >= 2);
    assert!(p12.stats(nemesis::Direction::ToClient).dropped >= 1);
    // A new connection from 3 to 1 is held: nothing comes back.
    let mut c31 = connect(mesh.addr_for(3, 1).unwrap()).await;
    assert_eq!(ask(&mut c31, "held", QUIET).await, None);

    mesh.heal_all();
    for (&(a, b), c) in conns.iter_mut() {
        let msg = format!("{a}->{b}");
        // Answers lost during the cut never come; the first one back is the new one.
        assert_eq!(
            ask(c, &msg, LONG).await.as_deref(),
            Some(format!("re:{msg}").as_str()),
            "link {a}->{b} after heal"
        );
    }
    assert_eq!(ask(&mut c31, "go", LONG).await.as_deref(), Some("re:go"));
    mesh.shutdown().await;
}
