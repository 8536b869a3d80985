//! The protobuf codec of every `bosun.v1` service, client and server: prost's, with small
//! initial buffers.
//!
//! tonic starts every RPC with an 8 KiB encode buffer and an 8 KiB decode buffer. A control
//! plane holds one long-lived stream each way per connected agent, so at a thousand agents
//! those starting buffers alone were 16 MiB, while most messages on them are a few hundred
//! bytes. Buffers still grow to the largest message an RPC carries (bundles, snapshots), so
//! nothing is limited by this; only the idle cost shrinks.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::ProstCodec;

/// Initial size of an RPC's encode and decode buffers.
pub const INITIAL_BUFFER: usize = 512;
/// How much an encoder buffers before yielding to the transport (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// prost's codec with [`INITIAL_BUFFER`]-sized buffers; named by the generated code
/// (`codec_path` in `build.rs`).
#[derive(Debug, Clone, Copy)]
pub struct LeanCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for LeanCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(INITIAL_BUFFER, YIELD_THRESHOLD)
}

impl<T, U> Codec for LeanCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = <ProstCodec<T, U> as Codec>::Decoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}
