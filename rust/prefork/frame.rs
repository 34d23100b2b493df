//! The pipe protocol between a worker thread and its child process: each message is a
//! frame, a big-endian u32 length followed by that many bytes. Inside, a one-byte kind and
//! fields: strings and byte strings as a u32 length and the bytes, integers as i64.
//! `taskito/_prefork_child.py` speaks the other side.
//!
//! Parent to child: `J` job (task name, payload, job id, queue, retry count, max retries,
//! thread id, and for a canvas step its parents' results: mode, count, then per parent a
//! presence flag and the bytes). Child to parent: `R` ready, `E` startup error (message), `C` complete
//! (result bytes, run time, events), `F` failed (error, traceback, retryable byte, run time,
//! events), `V` an event raised while the job runs (its JSON text). The run time is a
//! big-endian f64 of seconds: how long the child's dispatch took, as a worker thread would
//! time it for the metrics. The events of an answer are the job's closing events (completed,
//! failed, ...), held back by the child so that the parent fires them only once the engine
//! has settled the job: a u32 count, then each event's JSON text.

use std::io::{self, Read, Write};
use std::time::Duration;

use crate::job::{ClaimedJob, Outcome};
use crate::retry_rule::RetryRule;

/// The largest frame accepted from a child (a result larger than this is a protocol error).
const MAX_FRAME: usize = 1 << 30;

/// What a child says.
#[derive(Debug)]
pub enum Reply {
    Ready,
    StartupError(String),
    /// A job's outcome, how long the child took to run it, and its closing events.
    Done(Outcome, Duration, Vec<String>),
    /// An event the job raised as it ran (started, a job it enqueued, ...).
    Event(String),
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    buf.extend_from_slice(&(b.len() as u32).to_be_bytes());
    buf.extend_from_slice(b);
}

/// Encodes a job request.
pub fn job_frame(job: &ClaimedJob, thread_id: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 + job.payload.len());
    body.push(b'J');
    put_bytes(&mut body, job.task_name.as_bytes());
    put_bytes(&mut body, &job.payload);
    put_bytes(&mut body, job.id.as_bytes());
    put_bytes(&mut body, job.queue.as_bytes());
    body.extend_from_slice(&job.retry_count.to_be_bytes());
    body.extend_from_slice(&job.max_retries.to_be_bytes());
    put_bytes(&mut body, thread_id.as_bytes());
    if let Some(p) = &job.parents {
        // A canvas step: mode, count, then per parent a presence flag and its result.
        body.extend_from_slice(&(p.mode as i64).to_be_bytes());
        body.extend_from_slice(&(p.results.len() as i64).to_be_bytes());
        for r in &p.results {
            body.extend_from_slice(&i64::from(r.is_some()).to_be_bytes());
            if let Some(r) = r {
                put_bytes(&mut body, r);
            }
        }
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

pub fn write_frame(w: &mut impl Write, frame: &[u8]) -> io::Result<()> {
    w.write_all(frame)?;
    w.flush()
}

/// Reads one frame; `Ok(None)` on a clean end of stream before it starts.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    // The buffer grows with the bytes that arrive: a child that declares a gigabyte and
    // sends nothing costs nothing.
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    let got = r.take(len as u64).read_to_end(&mut body)?;
    if got < len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some(body))
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn bytes(&mut self) -> io::Result<Vec<u8>> {
        if self.0.len() < 4 {
            return Err(bad());
        }
        let n = u32::from_be_bytes([self.0[0], self.0[1], self.0[2], self.0[3]]) as usize;
        let rest = &self.0[4..];
        if rest.len() < n {
            return Err(bad());
        }
        let out = rest[..n].to_vec();
        self.0 = &rest[n..];
        Ok(out)
    }
    fn text(&mut self) -> io::Result<String> {
        String::from_utf8(self.bytes()?).map_err(|_| bad())
    }
    fn byte(&mut self) -> io::Result<u8> {
        let (&b, rest) = self.0.split_first().ok_or_else(bad)?;
        self.0 = rest;
        Ok(b)
    }
    /// The closing events that end an answer; none in an answer without the count.
    fn events(&mut self) -> io::Result<Vec<String>> {
        if self.0.is_empty() {
            return Ok(Vec::new());
        }
        let (head, rest) = self.0.split_first_chunk::<4>().ok_or_else(bad)?;
        self.0 = rest;
        let count = u32::from_be_bytes(*head) as usize;
        // Each event takes at least its 4-byte length: a count beyond that is malformed.
        if count > self.0.len() / 4 {
            return Err(bad());
        }
        (0..count).map(|_| self.text()).collect()
    }
    /// A run time; a negative or non-finite one (a clock gone wrong) reads as zero.
    fn seconds(&mut self) -> io::Result<Duration> {
        let (head, rest) = self.0.split_first_chunk::<8>().ok_or_else(bad)?;
        self.0 = rest;
        Ok(Duration::try_from_secs_f64(f64::from_be_bytes(*head)).unwrap_or_default())
    }
}

fn bad() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "malformed frame from child")
}

/// Decodes a child's frame.
pub fn parse_reply(body: &[u8]) -> io::Result<Reply> {
    let mut c = Cursor(body);
    match c.byte()? {
        b'R' => Ok(Reply::Ready),
        b'E' => Ok(Reply::StartupError(c.text()?)),
        b'C' => {
            let outcome = Outcome::Complete(c.bytes()?);
            let took = c.seconds()?;
            Ok(Reply::Done(outcome, took, c.events()?))
        }
        b'F' => {
            let (error, traceback) = (c.text()?, c.text()?);
            let flag = c.byte()?;
            // Flag 2: retryable, with the task's retry rule: its kind byte, the delay in ms
            // and the dead letter's metadata as texts (see `RetryRule::from_parts`).
            let rule = match flag {
                2 => {
                    let kind = i64::from(c.byte()?);
                    let delay = c.text()?.parse::<i64>().unwrap_or(0);
                    let metadata = c.text()?;
                    RetryRule::from_parts(kind, delay, (!metadata.is_empty()).then_some(metadata))
                }
                _ => None,
            };
            let outcome = Outcome::Failed {
                error,
                traceback,
                retryable: flag != 0,
                rule,
            };
            let took = c.seconds()?;
            Ok(Reply::Done(outcome, took, c.events()?))
        }
        b'V' => Ok(Reply::Event(c.text()?)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipe that holds a few bytes and fails any read into a buffer past 1 MiB.
    struct Stingy(Vec<u8>);

    impl Read for Stingy {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            assert!(
                buf.len() <= 1 << 20,
                "asked to fill {} bytes at once",
                buf.len()
            );
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn a_declared_length_is_not_allocated_up_front() {
        let mut data = (MAX_FRAME as u32).to_be_bytes().to_vec();
        data.extend_from_slice(b"only this");
        let err = read_frame(&mut Stingy(data)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let mut whole = 5u32.to_be_bytes().to_vec();
        whole.extend_from_slice(b"hello");
        assert_eq!(read_frame(&mut Stingy(whole)).unwrap().unwrap(), b"hello");
    }

    #[test]
    fn replies_round_trip() {
        let mut body = vec![b'F'];
        put_bytes(&mut body, b"ValueError: x");
        put_bytes(&mut body, b"tb");
        body.push(1);
        body.extend_from_slice(&0.25f64.to_be_bytes());
        body.extend_from_slice(&1u32.to_be_bytes());
        put_bytes(&mut body, b"[\"job.failed\", {}]");
        match parse_reply(&body).unwrap() {
            Reply::Done(
                Outcome::Failed {
                    error,
                    traceback,
                    retryable,
                    rule,
                },
                took,
                events,
            ) => {
                assert_eq!(rule, None);
                assert_eq!(error, "ValueError: x");
                assert_eq!(traceback, "tb");
                assert!(retryable);
                assert_eq!(took, Duration::from_millis(250));
                assert_eq!(events, ["[\"job.failed\", {}]"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_reply(&[b'C', 0, 0]).is_err());
        // A result without its run time is malformed; a negative run time reads as zero.
        let mut done = vec![b'C'];
        put_bytes(&mut done, b"r");
        assert!(parse_reply(&done).is_err());
        done.extend_from_slice(&(-1.0f64).to_be_bytes());
        match parse_reply(&done).unwrap() {
            Reply::Done(Outcome::Complete(r), took, events) => {
                assert_eq!(r, b"r");
                assert_eq!(took, Duration::ZERO);
                assert!(events.is_empty());
            }
            other => panic!("{other:?}"),
        }
        // A count of events larger than the frame could hold is malformed.
        done.extend_from_slice(&9u32.to_be_bytes());
        assert!(parse_reply(&done).is_err());
        let mut event = vec![b'V'];
        put_bytes(&mut event, b"[\"job.started\", {}]");
        assert!(matches!(parse_reply(&event).unwrap(), Reply::Event(e) if e.contains("started")));
        let mut framed = Vec::new();
        framed.extend_from_slice(&3u32.to_be_bytes());
        framed.extend_from_slice(b"abc");
        let mut r = &framed[..];
        assert_eq!(read_frame(&mut r).unwrap().unwrap(), b"abc");
        assert!(read_frame(&mut r).unwrap().is_none());
    }

    #[test]
    fn a_failure_carries_its_retry_rule() {
        let mut body = vec![b'F'];
        put_bytes(&mut body, b"CircuitBreakerOpenError: open");
        put_bytes(&mut body, b"");
        body.extend_from_slice(&[2, 2]);
        put_bytes(&mut body, b"5000");
        put_bytes(&mut body, b"");
        body.extend_from_slice(&0.0f64.to_be_bytes());
        body.extend_from_slice(&0u32.to_be_bytes());
        match parse_reply(&body).unwrap() {
            Reply::Done(Outcome::Failed { rule, .. }, _, _) => {
                assert_eq!(rule, Some(RetryRule::Postpone(5000)))
            }
            _ => panic!("not a failure"),
        }
    }
}
