//! The stable diagnostic codes. A code, once published, keeps its meaning; the
//! catalogue with an example of each is `docs/diagnostics.md`, and a test checks that
//! every code here is documented there and has a failing UI test.

use std::fmt;

macro_rules! codes {
    ($($variant:ident = $code:literal, $title:literal;)*) => {
        /// A diagnostic code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every code, in catalogue order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as printed, e.g. `"E0003"`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }

            /// A short title for the catalogue.
            pub fn title(self) -> &'static str {
                match self {
                    $(Code::$variant => $title,)*
                }
            }
        }
    };
}

codes! {
    InvalidToken = "E0001", "text that is not a token";
    UnterminatedString = "E0002", "unterminated quoted string";
    UnexpectedToken = "E0003", "unexpected token";
    UnexpectedEof = "E0004", "unexpected end of file";
    UnknownSection = "E0010", "selected section id not found";
    DuplicateSection = "E0011", "section id defined twice";
    WrongSection = "E0012", "directive belongs to the other section";
    MissingAddress = "E0020", "missing mandatory address";
    MissingPort = "E0021", "missing mandatory port";
    InvalidAddress = "E0022", "invalid IP address";
    InvalidPort = "E0023", "invalid port or unknown service name";
    InvalidNumber = "E0024", "invalid number";
    InvalidWeight = "E0025", "weight less than 1";
    InvalidBool = "E0026", "expected yes or no";
    InvalidChoice = "E0027", "value not among the choices";
    DuplicateDirective = "E0028", "directive given twice";
    ConflictingAddress = "E0029", "listener address given in two ways";
    DuplicateListener = "E0030", "two listeners on the same address and port";
    OverlappingListener = "E0031", "listeners whose addresses overlap";
    TlsWithoutCertificate = "E0032", "TLS listener without a certificate";
    CertificateUnreadable = "E0033", "certificate or key file unreadable";
    KeyMismatch = "E0034", "private key does not match the certificate";
    BadPassphrase = "E0035", "private key cannot be decrypted with the passphrase";
    UsersRange = "E0036", "users min greater than users max";
    ServersRange = "E0037", "servers min greater than servers max";
    NoRemote = "E0038", "no remote";
    NoListener = "E0039", "no listener";
    Deprecated = "E0040", "deprecated form";
    Ignored = "E0041", "directive without effect";
    InvalidSetenv = "E0042", "invalid setenv";
    TlsUnused = "E0043", "TLS material without a TLS listener";
    ZeroCount = "E0044", "count must be at least 1";
    InvalidAcl = "E0045", "invalid network in an acl";
    NotForTheOs = "E0046", "string the operating system cannot take";
    MetricsOnListener = "E0047", "metrics endpoint on a listener's address";
    ProxyFromAnyone = "E0048", "PROXY headers accepted from any peer";
    ProxyLoop = "E0049", "PROXY header sent to the relay's own PROXY listener";
    VerifyWithoutName = "E0050", "remote TLS verification without a server name";
    InvalidServerName = "E0051", "TLS server name that is not a DNS name";
    CaFileWithoutCertificates = "E0052", "CA file without certificates";
    InvalidCheck = "E0053", "invalid health check";
    InvalidRegex = "E0054", "regular expression that does not compile";
    LostRegexBackslash = "E0055", "backslash of a regular expression taken as an escape";
    IncludeNotFound = "E0056", "included file not found or unreadable";
    IncludeCycle = "E0057", "include cycle or includes nested too deep";
    UnsetVariable = "E0058", "unset variable in a string";
    IncludeRefused = "E0059", "include refused: a local file from a URL, or over a limit";
    InvalidSticky = "E0060", "invalid sticky cache";
    InvalidDscp = "E0061", "DSCP out of range";
    WrongSocketKind = "E0062", "listener setting for the other kind of socket";
    NotAStream = "E0063", "datagram or packet socket";
    InvalidTlsVersions = "E0064", "TLS version not accepted";
    UnresolvedHost = "E0065", "host name that does not resolve";
    SeveralAddresses = "E0066", "host name with several addresses";
    InvalidDebugFlag = "E0067", "unknown debug flag";
    OtherRelaySection = "E0068", "spawn id other than the selected tcprelay section";
    LineContinuation = "E0070", "line continuation";
    RemoteIsOwnListener = "E0071", "remote that is one of the relay's own listeners";
    ShadowedAclRule = "E0072", "acl rule never reached";
    AclDeniesAll = "E0073", "acl that lets no client in";
    RemoteNeverChosen = "E0074", "remote a worker never chooses";
    RetireBelowUsersMax = "E0075", "retire below users max";
    IdleBelowConnect = "E0076", "idle timeout shorter than the connect timeout";
    OtherDaemonsListener = "E0077", "listener that overlaps another daemon's";
    CertificateExpiresSoon = "E0080", "certificate that expires within 30 days";
    CertificateExpired = "E0081", "expired certificate";
    CertificateNotYetValid = "E0082", "certificate not yet valid";
    CaCertificateExpired = "E0083", "expired or not yet valid CA certificate";
    ChainOutOfOrder = "E0084", "certificate chain out of order";
    NameNotCovered = "E0085", "certificate that does not cover the listener's name";
    UnknownBalance = "E0086", "unknown balancing method";
    SourceStickyWithoutCache = "E0087", "balance source sticky without a sticky cache";
    SourceWithStickyCache = "E0088", "balance source with a sticky cache";
    SourceWithoutAddress = "E0089", "balance source where no client has an address";
    InvalidDnsName = "E0100", "remote name that is not a DNS name";
    SrvGivesPort = "E0101", "port or weight in an SRV remote";
    AddressAndSrv = "E0102", "remote with both an address and SRV records";
    SrvNameShape = "E0103", "SRV name without a service and protocol";
    InvalidNameserver = "E0104", "nameserver that is not an IP address";
    ResolveIntervalBounds = "E0105", "resolve interval bounds that do not fit";
    ResolveUnused = "E0106", "resolver settings without a discovered remote";
    FamilyPrefixOnName = "E0107", "family prefix before a remote's name";
    DuplicateDiscovered = "E0108", "the same discovered name twice";
    InvalidRouteName = "E0090", "invalid SNI route name";
    DuplicateRouteName = "E0091", "server name in two routes";
    OverlappingRoutes = "E0092", "SNI routes that overlap";
    RouteWithoutRemote = "E0093", "route without a remote";
    PassthroughWithCertificate = "E0094", "passthrough route with a certificate";
    TlsInsideTls = "E0095", "TLS remote in a passthrough route";
    TwoDefaultRoutes = "E0096", "two default routes";
    RoutesWithoutTlsListener = "E0097", "routes without a TLS listener";
    InvalidRouteSetting = "E0098", "invalid route mode";
}

/// The catalogue of the codes, `docs/diagnostics.md`, embedded: `tcprelay-cc
/// --explain` prints a code's section of it, so the document is the one source of
/// the explanations.
pub const CATALOGUE: &str = include_str!("../../../docs/diagnostics.md");

impl Code {
    /// The code written as `E0023`, `e0023`, `0023` or `23`.
    pub fn parse(text: &str) -> Option<Code> {
        let digits = text.strip_prefix(['E', 'e']).unwrap_or(text);
        if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let wanted = format!("E{digits:0>4}");
        Code::ALL.iter().copied().find(|c| c.as_str() == wanted)
    }

    /// The code's section of the catalogue, heading included: what it means, what
    /// to do, and an example.
    pub fn explanation(self) -> &'static str {
        let heading = format!("## {self}: ");
        let Some(start) = CATALOGUE
            .match_indices(&heading)
            .map(|(at, _)| at)
            .find(|&at| at == 0 || CATALOGUE.as_bytes()[at - 1] == b'\n')
        else {
            return self.title();
        };
        let rest = &CATALOGUE[start..];
        let end = rest[1..].find("\n## ").map_or(rest.len(), |n| n + 1);
        rest[..end].trim_end()
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The headings of the catalogue that name a code (`## E0003: ...`), in order.
    /// Other `##` headings, such as "Exit codes", are prose.
    fn code_headings() -> Vec<&'static str> {
        CATALOGUE
            .lines()
            .filter(|line| {
                line.strip_prefix("## E")
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            })
            .collect()
    }

    #[test]
    fn every_code_is_in_the_catalogue() {
        let headings = code_headings();
        for code in Code::ALL {
            let heading = format!("## {code}: {}", code.title());
            assert!(
                headings.contains(&heading.as_str()),
                "docs/diagnostics.md lacks the heading {heading:?}"
            );
        }
    }

    #[test]
    fn the_catalogue_has_no_stale_codes() {
        let known: HashSet<String> = Code::ALL
            .iter()
            .map(|code| format!("## {code}: {}", code.title()))
            .collect();
        let mut seen = HashSet::new();
        for heading in code_headings() {
            assert!(
                known.contains(heading),
                "docs/diagnostics.md has {heading:?}, which is not a code or not its title"
            );
            assert!(
                seen.insert(heading),
                "docs/diagnostics.md repeats {heading:?}"
            );
        }
    }

    #[test]
    fn every_code_has_an_explanation_with_an_example() {
        for code in Code::ALL {
            let text = code.explanation();
            assert!(
                text.starts_with(&format!("## {code}: {}\n", code.title())),
                "{code}: {text}"
            );
            // Its own section only, with prose and an example in a fenced block.
            assert_eq!(text.matches("\n## ").count(), 0, "{code}: {text}");
            let fence = text
                .find("```")
                .unwrap_or_else(|| panic!("{code} has no example"));
            let example = &text[fence..];
            assert!(
                example.lines().count() >= 3 && example.trim_end().ends_with("```"),
                "{code}: {example}"
            );
            assert!(
                text[..fence].split_whitespace().count() >= 10,
                "{code}: {text}"
            );
        }
    }

    #[test]
    fn codes_are_read_as_written_on_the_command_line() {
        for text in ["E0023", "e0023", "0023", "23"] {
            assert_eq!(Code::parse(text), Some(Code::InvalidPort), "{text}");
        }
        for text in ["E9999", "", "E", "E00023", "E00x3", "port"] {
            assert_eq!(Code::parse(text), None, "{text}");
        }
    }

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for code in Code::ALL {
            let text = code.as_str();
            assert!(
                text.len() == 5
                    && text.starts_with('E')
                    && text[1..].bytes().all(|b| b.is_ascii_digit()),
                "{text:?} is not of the form E0000"
            );
            assert!(seen.insert(text), "{text} is used twice");
            assert!(!code.title().is_empty());
        }
    }
}
