# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_tcprelay_global_optspecs
    string join \n P f b d= i= v/version h/help
end

function __fish_tcprelay_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_tcprelay_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_tcprelay_using_subcommand
    set -l cmd (__fish_tcprelay_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c tcprelay -n "__fish_tcprelay_needs_command" -s d -d 'Debug output at LEVEL, to standard error; also keeps the process in the foreground' -r
complete -c tcprelay -n "__fish_tcprelay_needs_command" -s i -d 'The id of the tcprelay section' -r
complete -c tcprelay -n "__fish_tcprelay_needs_command" -s P -d 'Check the configuration only, as `tcprelay-cc check` does, and exit with its status (0 clean, 1 errors, 2 usage or I/O error)'
complete -c tcprelay -n "__fish_tcprelay_needs_command" -s f -d 'Stay in the foreground and log to standard error (overrides the plan\'s `background`)'
complete -c tcprelay -n "__fish_tcprelay_needs_command" -s b -d 'Go to the background and log to syslog (overrides the plan\'s `background`)'
complete -c tcprelay -n "__fish_tcprelay_needs_command" -s v -l version -d 'Print the version (-V also)'
complete -c tcprelay -n "__fish_tcprelay_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tcprelay -n "__fish_tcprelay_needs_command" -a "run" -d 'Run a plan compiled by `tcprelay-cc compile`'
complete -c tcprelay -n "__fish_tcprelay_needs_command" -a "ctl" -d 'Ask a running relay, or tell it what to do, through its control socket'
complete -c tcprelay -n "__fish_tcprelay_using_subcommand run" -s d -d 'Debug output at LEVEL, to standard error; also keeps the process in the foreground' -r
complete -c tcprelay -n "__fish_tcprelay_using_subcommand run" -s f -d 'Stay in the foreground and log to standard error (overrides the plan\'s `background`)'
complete -c tcprelay -n "__fish_tcprelay_using_subcommand run" -s b -d 'Go to the background and log to syslog (overrides the plan\'s `background`)'
complete -c tcprelay -n "__fish_tcprelay_using_subcommand run" -s v -l version -d 'Print the version (-V also)'
complete -c tcprelay -n "__fish_tcprelay_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tcprelay -n "__fish_tcprelay_using_subcommand ctl" -s s -l socket -d 'The relay\'s control socket' -r -F
complete -c tcprelay -n "__fish_tcprelay_using_subcommand ctl" -l json -d 'Print the answer as it came: one JSON document on one line'
complete -c tcprelay -n "__fish_tcprelay_using_subcommand ctl" -s h -l help -d 'Print help (see more with \'--help\')'
