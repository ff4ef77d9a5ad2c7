//! The codec of every generated service and client: prost's, with a smaller encode
//! buffer. tonic encodes a stream's messages into one buffer until it holds its yield
//! threshold (32 KiB by default) and hands that chunk to HTTP/2, which keeps it while the
//! client's flow-control window is closed: a stream whose client stops reading holds a
//! chunk of its own, a copy of what the feed shares. With 8 KiB chunks, 1,000 such streams
//! hold about a quarter of what they held; a chunk of that size still carries about a
//! hundred trades or session answers.

use std::marker::PhantomData;

use tonic::codec::BufferSettings;
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Bytes a stream's encode buffer starts with, and at which it hands its chunk on.
const CHUNK_BYTES: usize = 8 * 1024;

/// prost's codec with [`CHUNK_BYTES`] chunks when encoding.
#[derive(Debug, Clone)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> ProstEncoder<T> {
        ProstEncoder::new(BufferSettings::new(CHUNK_BYTES, CHUNK_BYTES))
    }

    fn decoder(&mut self) -> ProstDecoder<U> {
        ProstDecoder::default()
    }
}
