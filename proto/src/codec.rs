//! The gRPC message codec: prost's, with a small buffer per call.
//!
//! tonic allocates a codec buffer for every call up front (8 KiB by
//! default) and keeps it while the call lasts. A watch is a call that lasts:
//! 50,000 agents each holding one would keep 400 MiB of mostly empty
//! buffers in the apiserver (and as much in a client holding many watches).
//! A larger message grows the buffer as it is encoded or decoded.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// The bytes allocated per call before its first message.
pub const CALL_BUFFER_BYTES: usize = 1024;
/// A streaming call yields what it has encoded once it holds this much
/// (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

fn settings() -> BufferSettings {
    BufferSettings::new(CALL_BUFFER_BYTES, YIELD_THRESHOLD)
}

/// [`ProstCodec`] with [`CALL_BUFFER_BYTES`] per call.
#[derive(Debug, Clone)]
pub struct SmallBufferCodec<T, U> {
    _messages: PhantomData<(T, U)>,
}

impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        Self {
            _messages: PhantomData,
        }
    }
}

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}
