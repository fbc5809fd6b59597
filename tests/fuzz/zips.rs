//! A zip writer that does whatever it is told: any name bytes, duplicate
//! names, modes of symlinks and special files, unknown compression methods,
//! flags, and sizes that lie. The `zip` crate's writer refuses most of these,
//! which is why hostile archives are laid out by hand here (APPNOTE 6.3.10,
//! sections 4.3.7, 4.3.12 and 4.3.16).

use std::collections::HashMap;
use std::io::{Cursor, Write};
use std::sync::{Mutex, OnceLock};

use proptest::prelude::*;

/// The unix file types an entry can claim in its external attributes.
pub const S_IFREG: u32 = 0o100_000;
pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFLNK: u32 = 0o120_000;

/// One entry as it is written, lies included.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: Vec<u8>,
    /// The bytes stored after the local header, compressed or not.
    pub data: Vec<u8>,
    /// What `data` decompresses to, when the entry is honest about it.
    pub plain: Vec<u8>,
    /// 0 stored, 8 deflate; anything else is a method the reader must refuse.
    pub method: u16,
    /// Unix mode in the external attributes, made by unix; `None` is an
    /// entry made by DOS, with no mode.
    pub mode: Option<u32>,
    /// General purpose flags: bit 0 is encryption, bit 11 a UTF-8 name.
    pub flags: u16,
    /// The uncompressed size the headers claim, when it is a lie.
    pub declared_size: Option<u32>,
    /// Whether the headers' CRC-32 matches the data.
    pub crc_ok: bool,
}

impl Entry {
    /// A stored regular file, honest in every header.
    pub fn stored(name: impl Into<Vec<u8>>, plain: Vec<u8>) -> Self {
        let name = name.into();
        let flags = utf8_flag(&name);
        Self {
            name,
            data: plain.clone(),
            plain,
            method: 0,
            mode: Some(S_IFREG | 0o644),
            flags,
            declared_size: None,
            crc_ok: true,
        }
    }

    /// A deflated regular file, honest in every header.
    pub fn deflated(name: impl Into<Vec<u8>>, plain: Vec<u8>) -> Self {
        Self { data: deflate(&plain), method: 8, ..Self::stored(name, plain) }
    }
}

/// Sets the UTF-8 flag on names that need it, as zip tools do; other names
/// are read as code page 437.
pub fn utf8_flag(name: &[u8]) -> u16 {
    if !name.is_ascii() && std::str::from_utf8(name).is_ok() {
        1 << 11
    } else {
        0
    }
}

/// Lays out `entries` as a zip archive.
pub fn write(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let offset = u32::try_from(out.len()).expect("test archives stay under 4 GiB");
        let crc = if e.crc_ok { crc32(&e.plain) } else { !crc32(&e.plain) };
        let size = e.declared_size.unwrap_or(u32::try_from(e.plain.len()).expect("entries stay under 4 GiB"));
        let compressed = u32::try_from(e.data.len()).expect("entries stay under 4 GiB");
        let name_len = u16::try_from(e.name.len()).expect("names stay under 64 KiB");

        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes());
        for v in [e.flags, e.method, 0, 0x21] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, compressed, size] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&e.name);
        out.extend_from_slice(&e.data);

        let made_by: u16 = if e.mode.is_some() { 3 << 8 | 20 } else { 20 };
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        for v in [made_by, 20, e.flags, e.method, 0, 0x21] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, compressed, size] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [name_len, 0, 0, 0, 0] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        central.extend_from_slice(&(e.mode.unwrap_or(0) << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(&e.name);
    }
    let central_at = u32::try_from(out.len()).expect("test archives stay under 4 GiB");
    let central_len = u32::try_from(central.len()).expect("test archives stay under 4 GiB");
    let count = u16::try_from(entries.len()).expect("test archives hold under 64 Ki entries");
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    for v in [0, 0, count, count] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&central_len.to_le_bytes());
    out.extend_from_slice(&central_at.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// Deflated runs of one byte, by the byte and the run's length.
type Runs = HashMap<(u8, usize), Vec<u8>>;

/// The raw deflate stream of `plain`. Long runs of one byte (the bombs) are
/// deflated once per process: the test profile's deflate is slow.
pub fn deflate(plain: &[u8]) -> Vec<u8> {
    static RUNS: OnceLock<Mutex<Runs>> = OnceLock::new();
    match plain.first() {
        Some(&byte) if plain.len() >= 4096 && plain.iter().all(|&b| b == byte) => {
            let mut runs = RUNS.get_or_init(Mutex::default).lock().expect("no test panics while deflating");
            runs.entry((byte, plain.len())).or_insert_with(|| deflate_now(plain)).clone()
        }
        _ => deflate_now(plain),
    }
}

/// Deflates through the `zip` crate's writer and takes the stream out of the
/// archive it wrote.
fn deflate_now(plain: &[u8]) -> Vec<u8> {
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file("x", options).expect("starting an entry");
    w.write_all(plain).expect("deflating");
    let bytes = w.finish().expect("finishing").into_inner();
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
    let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
    let central = bytes.windows(4).rposition(|w| w == b"PK\x01\x02").expect("a central directory");
    let start = 30 + u16_at(26) + u16_at(28);
    bytes[start..start + u32_at(central + 20)].to_vec()
}

/// CRC-32 (IEEE), a byte at a time from a table.
pub fn crc32(data: &[u8]) -> u32 {
    static TABLE: OnceLock<[u32; 256]> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [0u32; 256];
        for (n, slot) in (0u32..).zip(table.iter_mut()) {
            *slot = (0..8).fold(n, |c, _| if c & 1 == 1 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 });
        }
        table
    });
    !data.iter().fold(!0u32, |crc, &b| table[usize::from((crc as u8) ^ b)] ^ (crc >> 8))
}

/// Entry names that have broken unpackers: traversal, absolute paths,
/// Windows separators and drives, control characters, Finder metadata,
/// names that collide once normalized, and the edges of the length limits.
pub fn hostile_name() -> impl Strategy<Value = Vec<u8>> {
    let fixed = prop::sample::select(vec![
        "a",
        "a/",
        "a/b",
        "a/b/",
        "a/b/c.txt",
        "b.txt",
        "a//b",
        "./a",
        "a/./b",
        "a/.",
        ".",
        "./",
        "/",
        "..",
        "../",
        "../a",
        "a/../b",
        "a/..",
        "../../../../tmp/x",
        "/etc/passwd",
        "//x",
        "C:/x",
        "c:x",
        "a\\b",
        "..\\..\\x",
        "__MACOSX/a",
        "__MACOSX/",
        "a/__MACOSX/b",
        "\u{e9}",
        "e\u{301}",
        "a\0b",
        "a\nb",
        "a\rb",
        "a\u{7f}",
        "\u{202e}txt.exe",
        "\u{1F600}/\u{1F600}",
        "con",
        "a:b",
        "a b",
        " ",
        "~",
        "$HOME",
        "%2e%2e/x",
    ])
    .prop_map(|s| s.as_bytes().to_vec());
    let component = prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "..", ".", "", "__MACOSX", "\u{e9}", "a\\..", "c:"])
            .prop_map(str::to_owned),
        1 => (250usize..260).prop_map(|n| "x".repeat(n)),
        1 => "\\PC{1,8}",
    ];
    let composed = (prop::collection::vec(component, 1..6), any::<bool>()).prop_map(|(parts, dir)| {
        let mut name = parts.join("/");
        if dir {
            name.push('/');
        }
        name.into_bytes()
    });
    prop_oneof![
        4 => fixed,
        4 => composed,
        1 => (1usize..600).prop_map(|n| "y/".repeat(n).into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..40),
        1 => "\\PC{0,30}".prop_map(String::into_bytes),
    ]
}

/// File contents: small and random, or long runs of one byte that deflate
/// to almost nothing (bombs, some within the limits and some past them).
pub fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        12 => prop::collection::vec(any::<u8>(), 0..64),
        4 => (any::<u8>(), 0usize..70_000).prop_map(|(b, n)| vec![b; n]),
        1 => prop::sample::select(vec![256 * 1024, 1024 * 1024, 3 * 1024 * 1024]).prop_map(|n| vec![0u8; n]),
    ]
}

/// One entry of any kind, honest or not.
pub fn entry() -> impl Strategy<Value = Entry> {
    let mode = prop_oneof![
        6 => Just(Some(S_IFREG | 0o644)),
        1 => Just(None),
        1 => Just(Some(S_IFDIR | 0o755)),
        1 => Just(Some(S_IFLNK | 0o777)),
        1 => prop::sample::select(vec![0o010_644u32, 0o020_644, 0o060_644, 0o140_644, 0o170_777, 0o4755])
            .prop_map(Some),
    ];
    let lie = prop_oneof![
        8 => Just(None),
        1 => prop::sample::select(vec![0u32, 1, 100, u32::MAX]).prop_map(Some),
    ];
    let method = prop_oneof![10 => Just(None), 1 => prop::sample::select(vec![1u16, 12, 14, 93, 99]).prop_map(Some)];
    (
        hostile_name(),
        content(),
        any::<bool>(),
        mode,
        lie,
        method,
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.95),
    )
        .prop_map(|(name, plain, deflated, mode, declared_size, method, encrypted, crc_ok)| {
            let mut e = if deflated { Entry::deflated(name, plain) } else { Entry::stored(name, plain) };
            if mode.is_some_and(|m| m & 0o170_000 == S_IFLNK) {
                e = Entry::stored(e.name, b"../../../../etc/passwd".to_vec());
            }
            e.mode = mode;
            e.declared_size = declared_size;
            e.crc_ok = crc_ok;
            if let Some(m) = method {
                e.method = m;
            }
            if encrypted {
                e.flags |= 1;
            }
            e
        })
}

/// An entry an honest tool writes: a short plain name, maybe a folder.
pub fn honest_entry() -> impl Strategy<Value = Entry> {
    ("[a-c]{1,2}(/[a-c]{1,2}){0,2}/?", content(), any::<bool>()).prop_map(|(name, plain, deflated)| {
        if name.ends_with('/') {
            Entry { mode: Some(S_IFDIR | 0o755), ..Entry::stored(name, Vec::new()) }
        } else if deflated {
            Entry::deflated(name, plain)
        } else {
            Entry::stored(name, plain)
        }
    })
}

/// Honest entries with up to two hostile ones slipped in among them.
pub fn mostly_honest() -> impl Strategy<Value = Vec<Entry>> {
    (prop::collection::vec(honest_entry(), 1..8), prop::collection::vec(entry(), 0..3), any::<prop::sample::Index>())
        .prop_map(|(mut entries, hostile, at)| {
            let at = at.index(entries.len() + 1);
            entries.splice(at..at, hostile);
            entries
        })
}
