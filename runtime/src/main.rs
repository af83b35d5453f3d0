//! `tcprelay`: runs a plan. Arguments are validated in `args`, the plan loaded and
//! validated in `load` before any socket is bound, then the master takes over.

use std::process::ExitCode;
use tcprelay::args::{self, Mode};
use tcprelay::{load, log, master, os};

fn main() -> ExitCode {
    let args = match args::parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            // `--help` and `--version` print to standard output and exit 0; a usage
            // error prints to standard error, with the usage, and exits 2.
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    // Before any child (a compiler, a worker) can inherit it.
    let notify = tcprelay::notify::Notify::from_env();
    let source = match args.mode {
        Mode::Ctl(ctl) => {
            let env = tcprelay::ctl::current_env();
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
            return ExitCode::from(tcprelay::ctl::client::run(&ctl, &env, &mut out, &mut err));
        }
        Mode::CtlDiff(diff) => {
            let env = tcprelay::ctl::current_env();
            let mut err = std::io::stderr().lock();
            return ExitCode::from(tcprelay::ctl::diff::run(&diff, &env, &mut err));
        }
        Mode::ParseOnly(source) => {
            return ExitCode::from(load::check_only(&source).clamp(0, 255) as u8)
        }
        Mode::Run(source) => source,
    };
    // The arguments are read: their area may hold the process titles from now on.
    os::init_titles();
    let plan = match load::load_at_start(&source) {
        Ok(loaded) => {
            for line in &loaded.warnings {
                eprintln!("{line}");
            }
            loaded.plan
        }
        Err((code, e)) => {
            eprintln!("tcprelay: {e}");
            return ExitCode::from(code);
        }
    };
    if let Err(e) = tcprelay::apply_env(&plan.env) {
        eprintln!("tcprelay: {e}");
        return ExitCode::from(1);
    }
    // Before anything is bound or logged: a bad certificate, key or passphrase is
    // one line on standard error.
    let tls = match tcprelay::tls_context::for_plan(&plan) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("tcprelay: {e}");
            return ExitCode::from(1);
        }
    };
    // Checked once here, before anything is bound, rather than failing in every worker.
    let mechanism = match tcprelay::worker::Mechanism::from_env() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("tcprelay: {e}");
            return ExitCode::from(1);
        }
    };
    let background = args.foreground.map_or(plan.spawnd.background, |fg| !fg) && args.debug == 0;
    let target = if background {
        log::Target::Syslog
    } else {
        log::Target::Stderr
    };
    log::init(
        target,
        &plan.spawnd.syslog,
        args.debug.max(plan.spawnd.debug),
        log::Format::from(plan.spawnd.log_format),
    );
    tcprelay::info!("event mechanism: {mechanism}");
    let nofile = os::raise_nofile();
    tcprelay::debug!("open file limit: {nofile}");
    let pidfile = plan.spawnd.pidfile.clone();
    let (user, group) = (plan.spawnd.user.clone(), plan.spawnd.group.clone());
    let workdir = plan.spawnd.working_directory.clone();
    let mut master = match master::Master::new(plan, tls, source, notify) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("tcprelay: {e}");
            return ExitCode::from(1);
        }
    };
    if background {
        if let Err(e) = os::daemonize() {
            eprintln!("tcprelay: cannot go to the background: {e}");
            return ExitCode::from(1);
        }
        master.daemonized();
    }
    if let Some(path) = &pidfile {
        if let Err(e) = os::write_pidfile(path) {
            tcprelay::error!("cannot write pidfile {path}: {e}");
            return ExitCode::from(1);
        }
    }
    if let Err(e) = os::drop_privileges(user.as_deref(), group.as_deref()) {
        tcprelay::error!("cannot drop privileges: {e}");
        return ExitCode::from(1);
    }
    if let Some(dir) = &workdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            tcprelay::error!("cannot change to working directory {dir}: {e}");
            return ExitCode::from(1);
        }
    }
    let code = master.run();
    if let Some(path) = &pidfile {
        let _ = std::fs::remove_file(path);
    }
    ExitCode::from(code.clamp(0, 255) as u8)
}
