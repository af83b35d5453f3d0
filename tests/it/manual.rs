//! The configuration manual, `docs/manual/index.html`, in a real browser: headless
//! Chromium lays it out, a measuring script reports the size of every rule's diagram,
//! and a screenshot is taken (and kept as `target/<profile>/manual-screenshot.png` for
//! a person to look at).
//!
//! Chromium is Debian's `chromium` package at `/usr/bin/chromium`; `scripts/test.sh`
//! (the README's test command) installs it. Without it the test fails and says so,
//! rather than passing unseen.

use crate::harness;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Chromium is killed (with every process it started) after this long.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Appended to a copy of the page: writes one line per rule, `ID WIDTH HEIGHT PATHS`,
/// with the diagram's laid-out size, into a `<pre id="measured">`; then scrolls to the
/// railroad diagrams, far down the page, and writes `TOP BOTTOM SCROLLED` of the table of contents into a `<pre
/// id="sticky">`.
const MEASURE: &str = r#"<script>
(function () {
  var lines = [];
  document.querySelectorAll("section.rule").forEach(function (section) {
    var svg = section.querySelector("svg");
    var box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
    var paths = svg ? svg.querySelectorAll("path").length : 0;
    lines.push(section.id + " " + Math.round(box.width) + " " + Math.round(box.height) + " " + paths);
  });
  var pre = document.createElement("pre");
  pre.id = "measured";
  pre.textContent = "\n" + lines.join("\n") + "\n";
  document.body.appendChild(pre);
  document.getElementById("railroad-diagrams").scrollIntoView();
  var nav = document.querySelector("nav").getBoundingClientRect();
  var sticky = document.createElement("pre");
  sticky.id = "sticky";
  sticky.textContent = Math.round(nav.top) + " " + Math.round(nav.bottom) + " " + Math.round(window.scrollY);
  document.body.appendChild(sticky);
})();
</script>
</body>"#;

fn require_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's Chromium with \
         `apt-get install -y chromium` (scripts/test.sh installs it)"
    );
}

/// Runs headless Chromium with a fresh profile in `dir` on `url`, its standard output
/// to `stdout`; kills its process group after [`TIMEOUT`].
fn chromium(dir: &Path, extra: &[&str], url: &str, stdout: &Path) -> ExitStatus {
    use std::os::unix::process::CommandExt;
    let profile = tempfile::tempdir_in(dir).expect("profile dir");
    let log = std::fs::File::create(dir.join("chromium.log")).expect("log");
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(stdout).expect("stdout file"))
        .stderr(log)
        // Its own process group, so that a hung browser goes with its helpers.
        .process_group(0)
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!(
                "chromium did not finish within {TIMEOUT:?}: {}",
                std::fs::read_to_string(dir.join("chromium.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn manual() -> PathBuf {
    harness::root().join("docs/manual/index.html")
}

/// The attribute `name` of the first `<svg` tag in `html`, as a number.
fn svg_attribute(html: &str, name: &str) -> Option<f64> {
    let tag = &html[html.find("<svg")?..];
    let tag = &tag[..tag.find('>')?];
    let value = tag.split(&format!(" {name}=\"")).nth(1)?;
    value[..value.find('"')?].parse().ok()
}

/// One test, with the two runs of Chromium one after the other: the browser is heavy
/// on a two-core machine, and the relay tests running beside it keep time.
#[test]
fn manual_renders_every_diagram_in_headless_chromium() {
    require_chromium();
    diagrams_are_laid_out();
    screenshot_is_taken();
}

fn diagrams_are_laid_out() {
    let dir = tempfile::tempdir().expect("temp dir");
    let page = std::fs::read_to_string(manual()).expect("docs/manual/index.html");
    assert_eq!(page.matches("</body>").count(), 1);
    let measured_page = dir.path().join("index.html");
    std::fs::write(&measured_page, page.replace("</body>", MEASURE)).expect("copy");
    let dom_path = dir.path().join("dom.html");
    let status = chromium(
        dir.path(),
        &["--dump-dom", "--window-size=1280,800"],
        &format!("file://{}", measured_page.display()),
        &dom_path,
    );
    let dom = std::fs::read_to_string(&dom_path).unwrap_or_default();
    assert!(
        status.success() && dom.contains("</html>"),
        "chromium failed ({status}): {}",
        std::fs::read_to_string(dir.path().join("chromium.log")).unwrap_or_default()
    );
    let measured = dom
        .split("<pre id=\"measured\">")
        .nth(1)
        .and_then(|m| m.split("</pre>").next())
        .expect("the measuring script ran");

    let rules = tcprelay_cc::diagram::rules();
    assert!(rules.len() > 10);
    let mut problems = Vec::new();
    for rule in &rules {
        let id = format!("rule-{}", rule.name);
        // In the DOM: the rule's section holds an <svg> with a size and paths.
        let Some(section) = dom
            .split(&format!("<section class=\"rule\" id=\"{id}\">"))
            .nth(1)
            .and_then(|s| s.split("</section>").next())
        else {
            problems.push(format!("{id}: no section in the DOM"));
            continue;
        };
        let width = svg_attribute(section, "width").unwrap_or(0.0);
        let height = svg_attribute(section, "height").unwrap_or(0.0);
        if width <= 0.0 || height <= 0.0 {
            problems.push(format!("{id}: <svg> width {width}, height {height}"));
        }
        if !section.contains("<path") {
            problems.push(format!("{id}: no <path> in the diagram"));
        }
        // As laid out: the browser gave it a box, and drew its paths.
        let line = measured
            .lines()
            .find(|l| l.split(' ').next() == Some(id.as_str()));
        let numbers: Vec<u32> = line
            .map(|l| {
                l.split(' ')
                    .skip(1)
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        match numbers.as_slice() {
            [w, h, paths] if *w > 0 && *h > 0 && *paths > 0 => {}
            _ => problems.push(format!("{id}: laid out as {line:?}")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        measured.lines().filter(|l| !l.is_empty()).count(),
        rules.len(),
        "one diagram per rule: {measured}"
    );
    // Scrolled far down in a wide window, the table of contents is still in view, at
    // the top: it is sticky.
    let sticky: Vec<i64> = dom
        .split("<pre id=\"sticky\">")
        .nth(1)
        .and_then(|m| m.split("</pre>").next())
        .expect("the measuring script ran")
        .split(' ')
        .map(|n| n.parse().expect("a number"))
        .collect();
    let [top, bottom, scrolled] = sticky[..] else {
        panic!("{sticky:?}")
    };
    assert!(scrolled > 5_000, "the page scrolled by {scrolled} px only");
    assert!(
        (0..=1).contains(&top) && bottom > 200,
        "scrolled by {scrolled} px, the contents are at {top}..{bottom}: not in view"
    );
}

fn screenshot_is_taken() {
    let dir = tempfile::tempdir().expect("temp dir");
    let shot = dir.path().join("manual.png");
    let status = chromium(
        dir.path(),
        &[
            "--window-size=1280,2000",
            "--hide-scrollbars",
            &format!("--screenshot={}", shot.display()),
        ],
        &format!("file://{}", manual().display()),
        &dir.path().join("stdout.txt"),
    );
    assert!(status.success(), "chromium failed: {status}");
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    // IHDR: width and height, big-endian, at bytes 16..24.
    let width = u32::from_be_bytes(png[16..20].try_into().expect("4 bytes"));
    let height = u32::from_be_bytes(png[20..24].try_into().expect("4 bytes"));
    assert_eq!((width, height), (1280, 2000));
    // A blank page of this size compresses to about 14 KB; text and tables do not.
    assert!(
        png.len() > 60_000,
        "the screenshot is nearly empty: {} bytes",
        png.len()
    );
    // Kept beside the binaries, for a person to look at.
    let keep = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("manual-screenshot.png")));
    if let Some(keep) = keep {
        let _ = std::fs::write(keep, &png);
    }
}
