//! An async client connection speaking the node's client protocol (length-prefixed JSON
//! frames; responses matched to requests by id).

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use node::protocol::{frame_codec, ErrorReply, Operation, Reply, Request, Response};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One connection to one node. Requests are sent one at a time (closed loop).
pub struct Client {
    framed: Framed<TcpStream, LengthDelimitedCodec>,
    next_id: u64,
}

impl Client {
    /// Connects to `addr` within a bounded time.
    pub async fn connect(addr: &str) -> anyhow::Result<Client> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("connecting to {addr} timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            framed: Framed::new(stream, frame_codec()),
            next_id: 1,
        })
    }

    /// Sends `op` and waits at most `limit` for its response. The outer error is a
    /// transport failure or timeout (the connection should be dropped); the inner result is
    /// the node's answer.
    pub async fn call(
        &mut self,
        op: Operation,
        limit: Duration,
    ) -> anyhow::Result<Result<Reply, ErrorReply>> {
        let id = self.next_id;
        self.next_id += 1;
        let bytes = serde_json::to_vec(&Request { id, op })?;
        let exchange = async {
            self.framed.send(Bytes::from(bytes)).await?;
            // Bounded by `limit` through the timeout around this block.
            loop {
                let frame = match self.framed.next().await {
                    Some(f) => f?,
                    None => bail!("connection closed by the node"),
                };
                let resp: Response =
                    serde_json::from_slice(&frame).context("undecodable response")?;
                if resp.id == id {
                    return Ok(resp.result);
                }
            }
        };
        tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| anyhow!("no response within {limit:?}"))?
    }
}
