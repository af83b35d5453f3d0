# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_tcprelay_cc_global_optspecs
    string join \n explain= h/help V/version
end

function __fish_tcprelay_cc_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_tcprelay_cc_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_tcprelay_cc_using_subcommand
    set -l cmd (__fish_tcprelay_cc_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c tcprelay-cc -n "__fish_tcprelay_cc_needs_command" -l explain -d 'Prints the explanation of a diagnostic code, with an example (`--explain E0023`), and exits' -r
complete -c tcprelay-cc -n "__fish_tcprelay_cc_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_needs_command" -s V -l version -d 'Print version'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_needs_command" -f -a "check" -d 'Checks a configuration and prints its diagnostics'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_needs_command" -f -a "compile" -d 'Compiles a configuration into a plan file'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_needs_command" -f -a "diagram" -d 'Draws the railroad diagrams of the configuration language'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_needs_command" -f -a "diff" -d 'Shows what a reload from OLD to NEW changes'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_needs_command" -f -a "route" -d 'Dry-runs one client\'s connection through a plan or a configuration'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_needs_command" -f -a "explain" -d 'Prints a plan file in readable form, with secrets redacted'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand check" -s i -l child-id -d 'The id of the tcprelay section (as the original\'s `-i child_id`)' -r
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand check" -l format -d 'How to print diagnostics' -r -f -a "human\t'Source excerpts with labels (colour only on a terminal)'
short\t'One line each: `file:line:col: error[E0003]: message`'
json\t'One JSON object per line'"
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand check" -l color -d 'When to colour human diagnostics' -r -f -a "auto\t'Colour when printing to a terminal and `NO_COLOR` is not set'
always\t'Always colour'
never\t'Never colour'"
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand check" -l deny-warnings -d 'Treats warnings as errors, for CI: a configuration with warnings fails (exit status 1, and `compile` writes no plan)'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand check" -s q -l quiet -d 'Prints no summary line; diagnostics are printed still'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand compile" -s i -l child-id -d 'The id of the tcprelay section (as the original\'s `-i child_id`)' -r
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand compile" -l format -d 'How to print diagnostics' -r -f -a "human\t'Source excerpts with labels (colour only on a terminal)'
short\t'One line each: `file:line:col: error[E0003]: message`'
json\t'One JSON object per line'"
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand compile" -l color -d 'When to colour human diagnostics' -r -f -a "auto\t'Colour when printing to a terminal and `NO_COLOR` is not set'
always\t'Always colour'
never\t'Never colour'"
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand compile" -s o -l output -d 'Where to write the plan (mode 0600 when it holds a secret)' -r -F
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand compile" -l deny-warnings -d 'Treats warnings as errors, for CI: a configuration with warnings fails (exit status 1, and `compile` writes no plan)'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand compile" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand diagram" -s o -l output -d 'Output file: `.svg` for one SVG document, `.html` for a page; standard output (SVG) when absent' -r -F
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand diagram" -s h -l help -d 'Print help'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand diff" -l control -d 'The running relay\'s control socket (default: the path NEW\'s `control` names, else the default path: $RUNTIME_DIRECTORY/ctl, /run/tcprelay/ctl as root, $XDG_RUNTIME_DIR/tcprelay/ctl)' -r -F
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand diff" -l id -d 'The id of the spawnd section of a configuration' -r
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand diff" -s i -l child-id -d 'The id of the tcprelay section of a configuration' -r
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand diff" -l format -d 'How to print the report' -r -f -a "human\t'Sections of lines, each change with when it takes effect'
json\t'One JSON object with stable field names (`changed`, `listeners`, `remotes`, `acl`, `certificates`, `settings`, `sessions`, `notes`)'"
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand diff" -l running -d 'Compares the running relay\'s plan (OLD) with NEW'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand diff" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand route" -s i -l child-id -d 'The id of the tcprelay section, for a configuration' -r
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand route" -l from -d 'The address the connection comes from (the client, or the proxy that sends a PROXY header); not needed towards a Unix-domain socket' -r
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand route" -l to -d 'The address the client connects to' -r
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand route" -l sni -d 'The server name the client sends in its TLS handshake' -r
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand route" -l proxy-from -d 'The client a PROXY header names, on a listener that accepts them' -r
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand route" -l protocol -d 'The transport of the connection' -r -f -a "tcp\t''
sctp\t''"
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand route" -l format -d 'How to print the report' -r -f -a "human\t'One paragraph per step of the data path'
json\t'One JSON object on one line, with stable field names'"
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand route" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand explain" -s h -l help -d 'Print help'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand help; and not __fish_seen_subcommand_from check compile diagram diff route explain help" -f -a "check" -d 'Checks a configuration and prints its diagnostics'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand help; and not __fish_seen_subcommand_from check compile diagram diff route explain help" -f -a "compile" -d 'Compiles a configuration into a plan file'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand help; and not __fish_seen_subcommand_from check compile diagram diff route explain help" -f -a "diagram" -d 'Draws the railroad diagrams of the configuration language'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand help; and not __fish_seen_subcommand_from check compile diagram diff route explain help" -f -a "diff" -d 'Shows what a reload from OLD to NEW changes'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand help; and not __fish_seen_subcommand_from check compile diagram diff route explain help" -f -a "route" -d 'Dry-runs one client\'s connection through a plan or a configuration'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand help; and not __fish_seen_subcommand_from check compile diagram diff route explain help" -f -a "explain" -d 'Prints a plan file in readable form, with secrets redacted'
complete -c tcprelay-cc -n "__fish_tcprelay_cc_using_subcommand help; and not __fish_seen_subcommand_from check compile diagram diff route explain help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
