//! [`PostcardBytes`]: the vector the journal's records and the snapshots are encoded
//! into. Postcard's own vector hands each short slice (a varint, most fields) to a call
//! that copies memory; this one writes those byte by byte. A snapshot of hundreds of
//! thousands of kept client order ids spent more of its encoding in those calls than in
//! the encoding itself.

use postcard::ser_flavors::Flavor;
use serde::Serialize;

/// Slices up to this long are written byte by byte.
const BYTE_BY_BYTE_MAX: usize = 16;

/// Postcard's output: a vector, filled byte by byte for short slices.
pub struct PostcardBytes(pub Vec<u8>);

impl Flavor for PostcardBytes {
    type Output = Vec<u8>;

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        match data.len() <= BYTE_BY_BYTE_MAX {
            true => data.iter().for_each(|byte| self.0.push(*byte)),
            false => self.0.extend_from_slice(data),
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

/// `value` encoded after what `buffer` holds: `postcard::to_extend`'s bytes.
pub fn to_extend<T: Serialize + ?Sized>(value: &T, buffer: Vec<u8>) -> postcard::Result<Vec<u8>> {
    let mut serializer = postcard::Serializer {
        output: PostcardBytes(buffer),
    };
    value.serialize(&mut serializer)?;
    serializer.output.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_are_postcards_own() {
        let value = (
            u64::MAX,
            "a client order id",
            vec![1u32, 300, 70_000],
            "a string longer than sixteen bytes, copied whole",
            Some(-5i64),
        );
        let ours = to_extend(&value, vec![9]).expect("encodes");
        let postcards = postcard::to_extend(&value, vec![9]).expect("encodes");
        assert_eq!(ours, postcards);
    }
}
