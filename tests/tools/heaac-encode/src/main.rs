//! Test fixture tool: s16le PCM on stdin -> ADTS AAC (HE-AAC v1/v2 or LC) through FDK AAC.
//! It exists only because Debian's ffmpeg has no HE-AAC encoder; see README.md.

use fdk_aac_sys as fdk;
use std::io::{self, Read, Write};
use std::process::ExitCode;

const USAGE: &str = "usage: trackprint-test-heaac-encode --rate HZ --channels 1|2 --profile he|he2|lc \
                     [--bitrate BPS] [OUT.aac|-]  (s16le PCM on stdin, ADTS out)";

struct Args {
    rate: u32,
    channels: u32,
    aot: u32,
    bitrate: u32,
    out: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let (mut rate, mut channels, mut profile, mut bitrate, mut out) = (None, None, None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let number = |name: &str, v: String| v.parse::<u32>().map_err(|_| format!("{name}: not a number: {v}"));
        match arg.as_str() {
            "--rate" => rate = Some(number("--rate", value("--rate")?)?),
            "--channels" => channels = Some(number("--channels", value("--channels")?)?),
            "--bitrate" => bitrate = Some(number("--bitrate", value("--bitrate")?)?),
            "--profile" => profile = Some(value("--profile")?),
            "-h" | "--help" => return Err(USAGE.into()),
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}")),
            _ if out.is_none() => out = Some(arg),
            _ => return Err(format!("more than one output: {arg}")),
        }
    }
    let rate = rate.ok_or("--rate is required")?;
    let channels = channels.ok_or("--channels is required")?;
    if !(1..=2).contains(&channels) {
        return Err(format!("--channels {channels}: only 1 or 2"));
    }
    // Audio object types (ISO/IEC 14496-3): 2 LC, 5 SBR (HE-AAC v1), 29 PS (HE-AAC v2).
    let (aot, default_bitrate) = match profile.as_deref() {
        Some("lc") => (2, 64_000 * channels),
        Some("he") => (5, 32_000 * channels),
        Some("he2") if channels == 2 => (29, 32_000),
        // Parametric stereo codes a stereo pair as mono + side info: it has nothing to do on mono input.
        Some("he2") => return Err("--profile he2 (parametric stereo) needs --channels 2".into()),
        Some(p) => return Err(format!("--profile {p}: expected he, he2 or lc")),
        None => return Err("--profile is required".into()),
    };
    let out = out.filter(|o| o != "-");
    Ok(Args { rate, channels, aot, bitrate: bitrate.unwrap_or(default_bitrate), out })
}

/// Owns the encoder handle so every exit path closes it.
struct Encoder(fdk::HANDLE_AACENCODER);

impl Drop for Encoder {
    fn drop(&mut self) {
        unsafe { fdk::aacEncClose(&mut self.0) };
    }
}

fn check(what: &str, err: fdk::AACENC_ERROR) -> Result<(), String> {
    if err == fdk::AACENC_ERROR_AACENC_OK {
        Ok(())
    } else {
        Err(format!("{what} failed (FDK AAC error 0x{err:x})"))
    }
}

fn open(a: &Args) -> Result<(Encoder, fdk::AACENC_InfoStruct), String> {
    let mut handle: fdk::HANDLE_AACENCODER = std::ptr::null_mut();
    check("aacEncOpen", unsafe { fdk::aacEncOpen(&mut handle, 0, a.channels) })?;
    let enc = Encoder(handle);
    let params = [
        ("AOT", fdk::AACENC_PARAM_AACENC_AOT, a.aot),
        ("SAMPLERATE", fdk::AACENC_PARAM_AACENC_SAMPLERATE, a.rate),
        ("CHANNELMODE", fdk::AACENC_PARAM_AACENC_CHANNELMODE, a.channels), // MODE_1 = 1, MODE_2 = 2
        ("BITRATE", fdk::AACENC_PARAM_AACENC_BITRATE, a.bitrate),
        ("TRANSMUX", fdk::AACENC_PARAM_AACENC_TRANSMUX, 2), // 2 = ADTS: self-framed, remuxable to MP4
        ("AFTERBURNER", fdk::AACENC_PARAM_AACENC_AFTERBURNER, 1), // better quality, same bitstream syntax
    ];
    for (name, param, value) in params {
        check(&format!("setting {name}={value}"), unsafe { fdk::aacEncoder_SetParam(enc.0, param, value) })?;
    }
    // A call with no buffers applies the parameters; this is where a rate/bitrate/AOT mismatch is refused.
    use std::ptr::{null, null_mut};
    check("initialising the encoder (rate, bitrate and profile together)", unsafe {
        fdk::aacEncEncode(enc.0, null(), null(), null(), null_mut())
    })?;
    let mut info: fdk::AACENC_InfoStruct = unsafe { std::mem::zeroed() };
    check("aacEncInfo", unsafe { fdk::aacEncInfo(enc.0, &mut info) })?;
    Ok((enc, info))
}

/// One aacEncEncode call: feeds `pcm` (or flushes when None), returns (samples consumed, ADTS bytes).
fn encode(enc: &Encoder, pcm: Option<&mut [i16]>, out: &mut [u8]) -> Result<(usize, usize, bool), String> {
    let (mut in_ptr, in_len) = match pcm {
        Some(p) => (p.as_mut_ptr() as *mut std::ffi::c_void, p.len()),
        None => (std::ptr::null_mut(), 0),
    };
    let (mut in_id, mut in_size, mut in_el) = (fdk::AACENC_BufferIdentifier_IN_AUDIO_DATA as i32, (in_len * 2) as i32, 2);
    let (mut out_ptr, mut out_id, mut out_size, mut out_el) = (
        out.as_mut_ptr() as *mut std::ffi::c_void,
        fdk::AACENC_BufferIdentifier_OUT_BITSTREAM_DATA as i32,
        out.len() as i32,
        1,
    );
    let in_desc = fdk::AACENC_BufDesc {
        numBufs: 1,
        bufs: &mut in_ptr,
        bufferIdentifiers: &mut in_id,
        bufSizes: &mut in_size,
        bufElSizes: &mut in_el,
    };
    let out_desc = fdk::AACENC_BufDesc {
        numBufs: 1,
        bufs: &mut out_ptr,
        bufferIdentifiers: &mut out_id,
        bufSizes: &mut out_size,
        bufElSizes: &mut out_el,
    };
    // numInSamples -1 asks the encoder to flush its look-ahead (the end of the signal).
    let in_args = fdk::AACENC_InArgs { numInSamples: if in_ptr.is_null() { -1 } else { in_len as i32 }, numAncBytes: 0 };
    let mut out_args: fdk::AACENC_OutArgs = unsafe { std::mem::zeroed() };
    let err = unsafe { fdk::aacEncEncode(enc.0, &in_desc, &out_desc, &in_args, &mut out_args) };
    if err == fdk::AACENC_ERROR_AACENC_ENCODE_EOF {
        return Ok((0, 0, true));
    }
    check("aacEncEncode", err)?;
    Ok((out_args.numInSamples.max(0) as usize, out_args.numOutBytes.max(0) as usize, false))
}

fn run(a: &Args) -> Result<(), String> {
    let (enc, info) = open(a)?;
    let mut sink: Box<dyn Write> = match &a.out {
        Some(path) => Box::new(io::BufWriter::new(std::fs::File::create(path).map_err(|e| format!("{path}: {e}"))?)),
        None => Box::new(io::BufWriter::new(io::stdout().lock())),
    };
    let mut out = vec![0u8; (info.maxOutBufBytes as usize).max(8192)];
    let chunk_bytes = (info.frameLength * a.channels) as usize * 2;
    let (mut stdin, mut raw, mut pending) = (io::stdin().lock(), vec![0u8; chunk_bytes], Vec::<i16>::new());
    let mut odd: Option<u8> = None; // a read may split a sample; its first byte waits here
    let mut total_bytes = 0usize;
    loop {
        let n = stdin.read(&mut raw).map_err(|e| format!("reading stdin: {e}"))?;
        let eof = n == 0;
        total_bytes += n;
        let mut bytes: Vec<u8> = odd.take().into_iter().chain(raw[..n].iter().copied()).collect();
        if bytes.len() % 2 == 1 {
            odd = bytes.pop();
        }
        pending.extend(bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
        // Feed whatever is pending; the encoder takes what its input buffer has room for.
        while !pending.is_empty() {
            let (used, written, _) = encode(&enc, Some(&mut pending), &mut out)?;
            sink.write_all(&out[..written]).map_err(|e| format!("writing output: {e}"))?;
            pending.drain(..used);
            if used == 0 && written == 0 {
                break;
            }
        }
        if eof {
            break;
        }
    }
    if odd.is_some() || (total_bytes / 2) % a.channels as usize != 0 {
        return Err(format!("stdin ended mid-frame ({total_bytes} bytes): not interleaved s16le with {} channels", a.channels));
    }
    loop {
        let (_, written, done) = encode(&enc, None, &mut out)?;
        sink.write_all(&out[..written]).map_err(|e| format!("writing output: {e}"))?;
        if done {
            break;
        }
    }
    sink.flush().map_err(|e| format!("writing output: {e}"))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("trackprint-test-heaac-encode: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trackprint-test-heaac-encode: {e}");
            ExitCode::FAILURE
        }
    }
}
