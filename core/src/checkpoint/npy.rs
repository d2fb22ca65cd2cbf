//! `block_records.npy`, REALM's evidence-block texts: a numpy object array of UTF-8 byte
//! strings, which numpy stores as a pickle. Loading it with Python runs whatever code the
//! pickle names; this reader never executes anything. It interprets just the opcodes numpy
//! writes (protocols 2 to 5) into plain values, then accepts exactly one shape of result:
//! `numpy.core.multiarray._reconstruct(ndarray, ...)` built with an object dtype and a list
//! of `bytes` or `str` items. Anything else is an error that says what was found.

use std::cell::RefCell;
use std::rc::Rc;

use crate::Error;

const MAGIC: &[u8] = b"\x93NUMPY";
/// Far more items than any corpus; a corrupt count stops here instead of allocating.
const MAX_ITEMS: usize = 1 << 31;

/// Reads the records of a `block_records.npy` file: one string per evidence block, in order.
pub fn read_block_records(bytes: &[u8]) -> Result<Vec<String>, Error> {
    let (header, body) = split_header(bytes)?;
    if header.descr != "|O" {
        return Err(npy(format!(
            "element type `{}`; block records are an object array (`|O`)",
            header.descr
        )));
    }
    if header.shape.len() != 1 {
        return Err(npy(format!(
            "shape {:?}; block records are one-dimensional",
            header.shape
        )));
    }
    let value = Unpickler::new(body).run()?;
    let items = object_array_items(&value)?;
    if items.len() != header.shape[0] {
        return Err(npy(format!(
            "the header says {} records but the pickle holds {}",
            header.shape[0],
            items.len()
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Bytes(b) => {
                String::from_utf8(b.to_vec()).map_err(|_| npy(format!("record {i} is not UTF-8")))
            }
            Value::Str(s) => Ok(s.to_string()),
            other => Err(npy(format!(
                "record {i} is {}, not bytes or str",
                other.kind()
            ))),
        })
        .collect()
}

fn npy(message: String) -> Error {
    Error::Corpus(format!("block_records.npy: {message}"))
}

struct Header {
    descr: String,
    shape: Vec<usize>,
}

/// The `.npy` preamble: magic, version, header length, and the header's Python dict literal.
fn split_header(bytes: &[u8]) -> Result<(Header, &[u8]), Error> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(npy("not a .npy file (no \\x93NUMPY magic)".into()));
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize,
            12,
        ),
        v => return Err(npy(format!(".npy format version {v} is not supported"))),
    };
    let text = bytes
        .get(start..start + len)
        .ok_or_else(|| npy("the header runs past the end of the file".into()))?;
    let text = std::str::from_utf8(text).map_err(|_| npy("the header is not text".into()))?;
    let descr = dict_value(text, "descr")
        .and_then(|v| v.strip_prefix('\'')?.split('\'').next())
        .ok_or_else(|| npy("the header has no 'descr'".into()))?
        .to_string();
    if dict_value(text, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(npy("Fortran-ordered arrays are not supported".into()));
    }
    let shape_text = dict_value(text, "shape")
        .and_then(|v| v.strip_prefix('(')?.split(')').next())
        .ok_or_else(|| npy("the header has no 'shape'".into()))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| npy(format!("bad shape `{shape_text}`")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((Header { descr, shape }, &bytes[start + len..]))
}

/// The text after `'key':` in a Python dict literal, trimmed.
fn dict_value<'a>(dict: &'a str, key: &str) -> Option<&'a str> {
    let at = dict.find(&format!("'{key}'"))?;
    let rest = &dict[at + key.len() + 2..];
    Some(rest.trim_start().strip_prefix(':')?.trim_start())
}

/// A pickled value, as data: globals and calls are recorded, never resolved or run.
#[derive(Debug, Clone)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Bytes(Rc<[u8]>),
    Str(Rc<str>),
    Tuple(Rc<[Value]>),
    List(Rc<RefCell<Vec<Value>>>),
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    Global(Rc<str>, Rc<str>),
    /// `callable(*args)`, not called.
    Call(Rc<Value>, Rc<Value>),
    /// `obj.__setstate__(state)`, not applied.
    Build(Rc<Value>, Rc<Value>),
    Mark,
}

impl Value {
    fn kind(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(v) => format!("the bool {v}"),
            Value::Int(v) => format!("the int {v}"),
            Value::Float(v) => format!("the float {v}"),
            Value::Bytes(_) => "bytes".into(),
            Value::Str(_) => "a str".into(),
            Value::Tuple(_) => "a tuple".into(),
            Value::List(_) => "a list".into(),
            Value::Dict(_) => "a dict".into(),
            Value::Global(m, n) => format!("the global {m}.{n}"),
            Value::Call(f, _) => format!("a call of {}", f.kind()),
            Value::Build(o, _) => format!("a built {}", o.kind()),
            Value::Mark => "a mark".into(),
        }
    }
}

/// The items of `_reconstruct(ndarray, ...)` built with state
/// `(version, shape, dtype('O8'), fortran_order, [items])`.
fn object_array_items(value: &Value) -> Result<Vec<Value>, Error> {
    let not_array = || {
        npy(format!(
            "the pickle holds {}, not a numpy array",
            value.kind()
        ))
    };
    let Value::Build(obj, state) = value else {
        return Err(not_array());
    };
    let Value::Call(callable, _) = obj.as_ref() else {
        return Err(not_array());
    };
    match callable.as_ref() {
        Value::Global(m, n)
            if (m.as_ref() == "numpy.core.multiarray"
                || m.as_ref() == "numpy._core.multiarray")
                && n.as_ref() == "_reconstruct" => {}
        _ => return Err(not_array()),
    }
    let Value::Tuple(state) = state.as_ref() else {
        return Err(npy("the array's state is not a tuple".into()));
    };
    if state.len() != 5 {
        return Err(npy(format!(
            "the array's state has {} fields, not 5",
            state.len()
        )));
    }
    match &state[2] {
        Value::Build(dtype, _) => match dtype.as_ref() {
            Value::Call(_, args) => match args.as_ref() {
                Value::Tuple(a) if matches!(a.first(), Some(Value::Str(s)) if s.as_ref() == "O8") =>
                    {}
                _ => return Err(npy("the array's dtype is not object (`O8`)".into())),
            },
            _ => return Err(npy("the array's dtype is not a numpy dtype".into())),
        },
        other => return Err(npy(format!("the array's dtype is {}", other.kind()))),
    }
    match &state[4] {
        Value::List(items) => Ok(items.borrow().clone()),
        other => Err(npy(format!(
            "an object array's data should be a list, found {}",
            other.kind()
        ))),
    }
}

/// A pickle machine that only builds [`Value`]s.
struct Unpickler<'a> {
    data: &'a [u8],
    at: usize,
    stack: Vec<Value>,
    memo: std::collections::HashMap<u32, Value>,
}

impl<'a> Unpickler<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            at: 0,
            stack: Vec::new(),
            memo: std::collections::HashMap::new(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| npy("the pickle ends early".into()))?;
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64_len(&mut self) -> Result<usize, Error> {
        let n = u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
        usize::try_from(n).map_err(|_| npy("a length does not fit in memory".into()))
    }

    fn line(&mut self) -> Result<&'a str, Error> {
        let rest = &self.data[self.at..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| npy("the pickle ends inside a name".into()))?;
        let line = self.take(end + 1)?;
        std::str::from_utf8(&line[..end]).map_err(|_| npy("a global's name is not text".into()))
    }

    fn pop(&mut self) -> Result<Value, Error> {
        self.stack
            .pop()
            .ok_or_else(|| npy("the pickle pops an empty stack".into()))
    }

    fn top(&mut self) -> Result<&mut Value, Error> {
        self.stack
            .last_mut()
            .ok_or_else(|| npy("the pickle reads an empty stack".into()))
    }

    /// Everything above the topmost mark, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>, Error> {
        let mark = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or_else(|| npy("the pickle closes a mark it never opened".into()))?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }

    fn text(&mut self, n: usize) -> Result<Value, Error> {
        let bytes = self.take(n)?;
        let s = std::str::from_utf8(bytes).map_err(|_| npy("a str is not UTF-8".into()))?;
        Ok(Value::Str(s.into()))
    }

    fn push_item(&mut self, item: Value) -> Result<(), Error> {
        if let Value::List(list) = self.top()? {
            let mut list = list.borrow_mut();
            if list.len() >= MAX_ITEMS {
                return Err(npy("the list is too long".into()));
            }
            list.push(item);
            return Ok(());
        }
        Err(npy(
            "the pickle appends to something that is not a list".into()
        ))
    }

    fn run(mut self) -> Result<Value, Error> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    let version = self.u8()?;
                    if version > 5 {
                        return Err(npy(format!("pickle protocol {version} is not supported")));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Value::Mark),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i64))
                }
                b'M' => {
                    let b = self.take(2)?;
                    self.stack
                        .push(Value::Int(u16::from_le_bytes([b[0], b[1]]) as i64))
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(Value::Int(v as i64))
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    if n > 8 {
                        return Err(npy("an integer wider than 64 bits".into()));
                    }
                    let mut v: i64 = 0;
                    for (i, &byte) in b.iter().enumerate() {
                        v |= (byte as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n); // sign extension
                    }
                    self.stack.push(Value::Int(v))
                }
                b'G' => {
                    let b = self.take(8)?;
                    self.stack
                        .push(Value::Float(f64::from_be_bytes(b.try_into().expect("8"))))
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    self.stack.push(Value::Bytes(b.into()))
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?;
                    self.stack.push(Value::Bytes(b.into()))
                }
                0x8e => {
                    let n = self.u64_len()?;
                    let b = self.take(n)?;
                    self.stack.push(Value::Bytes(b.into()))
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.text(n)?;
                    self.stack.push(v)
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.text(n)?;
                    self.stack.push(v)
                }
                0x8d => {
                    let n = self.u64_len()?;
                    let v = self.text(n)?;
                    self.stack.push(v)
                }
                b')' => self.stack.push(Value::Tuple(Rc::from(Vec::new()))),
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(npy("a tuple takes more items than the stack holds".into()));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items.into()))
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items.into()))
                }
                b']' => self
                    .stack
                    .push(Value::List(Rc::new(RefCell::new(Vec::new())))),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(Rc::new(RefCell::new(items))))
                }
                b'a' => {
                    let item = self.pop()?;
                    self.push_item(item)?;
                }
                b'e' => {
                    for item in self.pop_mark()? {
                        self.push_item(item)?;
                    }
                }
                b'}' => self
                    .stack
                    .push(Value::Dict(Rc::new(RefCell::new(Vec::new())))),
                b's' | b'u' => {
                    let items = if op == b's' {
                        let v = self.pop()?;
                        let k = self.pop()?;
                        vec![k, v]
                    } else {
                        self.pop_mark()?
                    };
                    if items.len() % 2 != 0 {
                        return Err(npy("a dict update with an odd number of items".into()));
                    }
                    let Value::Dict(dict) = self.top()? else {
                        return Err(npy("the pickle sets an item on a non-dict".into()));
                    };
                    let mut dict = dict.borrow_mut();
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        dict.push((k, v));
                    }
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(module.into(), name.into()))
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.stack.push(Value::Global(m, n)),
                        _ => return Err(npy("STACK_GLOBAL without two names".into())),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.stack
                        .push(Value::Call(Rc::new(callable), Rc::new(args)))
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.pop()?;
                    self.stack.push(Value::Build(Rc::new(obj), Rc::new(state)))
                }
                b'q' => {
                    let key = self.u8()? as u32;
                    let v = self.top()?.clone();
                    self.memo.insert(key, v);
                }
                b'r' => {
                    let key = self.u32()?;
                    let v = self.top()?.clone();
                    self.memo.insert(key, v);
                }
                0x94 => {
                    let key = self.memo.len() as u32;
                    let v = self.top()?.clone();
                    self.memo.insert(key, v);
                }
                b'h' | b'j' => {
                    let key = if op == b'h' {
                        self.u8()? as u32
                    } else {
                        self.u32()?
                    };
                    let v = self.memo.get(&key).cloned().ok_or_else(|| {
                        npy(format!("the pickle recalls memo {key}, never stored"))
                    })?;
                    self.stack.push(v)
                }
                other => {
                    return Err(npy(format!(
                        "pickle opcode 0x{other:02x} at byte {} is not one numpy writes for object arrays",
                        self.at - 1
                    )));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    const EXPECTED: [&str; 4] = [
        "The Normans were a people in Normandy.",
        "Zürich — ünïcode ✓",
        "",
        "plain str",
    ];

    #[test]
    fn reads_what_numpy_2_writes() {
        let records = read_block_records(&fixture("block_records.npy")).unwrap();
        assert_eq!(records, EXPECTED);
    }

    #[test]
    fn reads_what_numpy_1_writes() {
        let records = read_block_records(&fixture("block_records_numpy1.npy")).unwrap();
        assert_eq!(records, EXPECTED);
    }

    #[test]
    fn every_truncation_and_byte_flip_is_an_error_or_a_clean_read() {
        let bytes = fixture("block_records.npy");
        for len in 0..bytes.len() {
            assert!(
                read_block_records(&bytes[..len]).is_err(),
                "truncated to {len}"
            );
        }
        for at in 0..bytes.len() {
            for delta in [1u8, 0x80] {
                let mut b = bytes.clone();
                b[at] = b[at].wrapping_add(delta);
                // A flipped byte may still spell a valid array (e.g. inside a text); it must
                // never panic.
                let _ = read_block_records(&b);
            }
        }
    }

    #[test]
    fn other_pickles_are_refused_with_what_they_hold() {
        let mut bytes = fixture("block_records.npy");
        let body = bytes.iter().position(|&b| b == 0x80).unwrap();
        bytes.truncate(body);
        // A pickle that calls os.system: recorded, never run, and refused.
        bytes.extend_from_slice(b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00echo\x85R.");
        let err = read_block_records(&bytes).unwrap_err().to_string();
        assert!(err.contains("os.system"), "{err}");
        assert!(
            read_block_records(b"not numpy")
                .unwrap_err()
                .to_string()
                .contains("magic")
        );
    }
}
