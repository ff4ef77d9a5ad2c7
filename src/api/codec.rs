//! The codec of every generated service and client: prost's, with a smaller encode
//! buffer. tonic encodes a stream's messages into one buffer until it holds its yield
//! threshold (32 KiB by default) and hands that chunk to HTTP/2, which keeps it while the
//! client's flow-control window is closed: a stream whose client stops reading holds a
//! chunk of its own, a copy of what the feed shares. With 8 KiB chunks, 1,000 such streams
//! hold about a quarter of what they held; a chunk of that size still carries about a
//! hundred trades or session answers.
//!
//! Decoding reads the message from the contiguous bytes tonic has gathered for it, as a
//! slice, rather than through tonic's `DecodeBuf`: prost then reads each varint, tag and
//! string straight from the slice instead of advancing the `BytesMut` behind it one step
//! at a time. The same bytes give the same message and the same errors.

use std::marker::PhantomData;

use prost::bytes::Buf;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::ProstEncoder;

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
    type Decoder = SliceDecoder<U>;

    fn encoder(&mut self) -> ProstEncoder<T> {
        ProstEncoder::new(BufferSettings::new(CHUNK_BYTES, CHUNK_BYTES))
    }

    fn decoder(&mut self) -> SliceDecoder<U> {
        SliceDecoder(PhantomData)
    }
}

/// prost's decoding of a message from the slice of its bytes.
#[derive(Debug)]
pub struct SliceDecoder<U>(PhantomData<U>);

impl<U: prost::Message + Default> Decoder for SliceDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let length = buf.remaining();
        let decoded = match buf.chunk().get(..length) {
            Some(bytes) => U::decode(bytes),
            // tonic gathers a message into one buffer, so this is not expected; prost
            // reads it through the buffer all the same.
            None => U::decode(&mut *buf),
        };
        buf.advance(buf.remaining());
        decoded.map(Some).map_err(super::status::undecodable)
    }
}
