//! A one-line notice on stderr when a heap error happens, written with
//! write(2) from a stack buffer (no stdio, no allocation). The stacks follow
//! in the report, symbolised after the program ends.

pub struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Line {
    pub fn new() -> Self {
        Line { buf: [0; 256], len: 0 }
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        self
    }
    pub fn dec(&mut self, mut v: u64) -> &mut Self {
        let mut d = [0u8; 20];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.str(core::str::from_utf8(&d[i..]).unwrap_or("?"))
    }
    pub fn hex(&mut self, v: u64) -> &mut Self {
        let mut d = [0u8; 18];
        let mut i = d.len();
        let mut v = v;
        loop {
            i -= 1;
            d[i] = b"0123456789abcdef"[(v & 0xf) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        i -= 2;
        d[i] = b'0';
        d[i + 1] = b'x';
        self.str(core::str::from_utf8(&d[i..]).unwrap_or("?"))
    }
    pub fn emit(&mut self) {
        self.str("\n");
        unsafe { libc::write(2, self.buf.as_ptr() as *const libc::c_void, self.len) };
    }
}
