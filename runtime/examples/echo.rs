//! A small echo server for trying tcprelay out: `echo ADDRESS:PORT [NAME]` answers
//! every line with `NAME: line`, so a client can see which backend served it.
//! Used by `examples/demo.sh`; not part of tcprelay.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9001".to_string());
    let name = args.next().unwrap_or_else(|| addr.clone());
    let listener = match TcpListener::bind(&addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("echo: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    for stream in listener.incoming().flatten() {
        let name = name.clone();
        std::thread::spawn(move || {
            let Ok(mut out) = stream.try_clone() else {
                return;
            };
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if writeln!(out, "{name}: {line}").is_err() {
                    break;
                }
            }
        });
    }
}
