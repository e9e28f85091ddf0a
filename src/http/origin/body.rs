//! Reading a representation from disk: small files whole (and then kept in memory by the
//! origin), larger ones streamed in chunks so they never sit in memory.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header::{HeaderValue, HttpDate, TryIntoHeaderValue};
use bytes::Bytes;
use tokio::io::{AsyncRead, ReadBuf};

use super::conditional::whole_seconds;

/// Files up to this size are read whole and kept in the origin's memory cache.
pub const MAX_CACHED_FILE: u64 = 1024 * 1024;

/// Chunk size when streaming larger files.
const CHUNK: usize = 64 * 1024;

/// What the file system says about a representation's file.
#[derive(Debug, Clone)]
pub struct FileInfo {
    /// Its length.
    pub len: u64,
    /// Its modification time in whole seconds since the epoch.
    pub modified: Option<u64>,
    /// `Last-Modified`, ready to send.
    pub last_modified: Option<HeaderValue>,
}

/// A file read whole.
#[derive(Debug, Clone)]
pub struct InMemory {
    /// Length and dates.
    pub info: FileInfo,
    /// The bytes.
    pub bytes: Bytes,
}

/// A representation's file, opened.
#[derive(Debug)]
pub enum Loaded {
    /// Small enough to read whole.
    Memory(InMemory),
    /// Streamed from this open file.
    File(FileInfo, File),
}

/// Opens `path` and reads it whole when it is at most [`MAX_CACHED_FILE`] bytes.
/// Blocking: call it from `spawn_blocking`. A directory reads as `NotFound`.
pub fn load(path: PathBuf) -> io::Result<Loaded> {
    let mut file = File::open(&path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::ErrorKind::NotFound.into());
    }
    let modified = meta.modified().ok().and_then(whole_seconds);
    let info = FileInfo {
        len: meta.len(),
        modified,
        last_modified: meta
            .modified()
            .ok()
            .and_then(|time| HttpDate::from(time).try_into_value().ok()),
    };
    if info.len > MAX_CACHED_FILE {
        return Ok(Loaded::File(info, file));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(info.len).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    // The length sent is the length read (the file may have changed since the stat).
    let info = FileInfo {
        len: bytes.len() as u64,
        ..info
    };
    Ok(Loaded::Memory(InMemory {
        info,
        bytes: Bytes::from(bytes),
    }))
}

/// A body of `remaining` bytes streamed from an open file, in chunks of 64 KiB.
#[derive(Debug)]
pub struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    len: u64,
    buf: Vec<u8>,
}

impl FileBody {
    /// Streams `len` bytes from the file's current position.
    pub fn new(file: tokio::fs::File, len: u64) -> Self {
        Self {
            file,
            remaining: len,
            len,
            buf: Vec::new(),
        }
    }
}

impl MessageBody for FileBody {
    type Error = io::Error;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.len)
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = &mut *self;
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining).map_or(CHUNK, |r| r.min(CHUNK));
        this.buf.resize(want, 0);
        let mut read = ReadBuf::new(&mut this.buf[..want]);
        ready!(Pin::new(&mut this.file).poll_read(cx, &mut read))?;
        let filled = read.filled();
        if filled.is_empty() {
            // The file shrank under us: end the response short rather than hang.
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file ended before its announced length",
            ))));
        }
        this.remaining -= filled.len() as u64;
        Poll::Ready(Some(Ok(Bytes::copy_from_slice(filled))))
    }
}

/// The body of a `HEAD` response: announces `len` bytes (`Content-Length`) and sends none
/// (actix never writes a body for `HEAD`).
#[derive(Debug, Clone, Copy)]
pub struct HeadBody(pub u64);

impl MessageBody for HeadBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.0)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(None)
    }
}
