//! The access rules compared as two ordered lists: first match wins, so a rule that
//! moves is a change. The edit script comes from their longest common subsequence;
//! only the lines removed (`-`, OLD's index) and added (`+`, NEW's index) are kept.

use tcprelay_plan::AclRule;

use super::report::AclLine;

/// The edit script from `old` to `new`, in reading order (a removal before the
/// addition that takes its place).
pub(super) fn diff(old: &[AclRule], new: &[AclRule]) -> Vec<AclLine> {
    let (n, m) = (old.len(), new.len());
    // lcs[i][j]: the longest common subsequence of old[i..] and new[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            i += 1;
            j += 1;
        } else if j == m || (i < n && lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(AclLine {
                op: "-",
                index: i,
                rule: old[i].to_string(),
            });
            i += 1;
        } else {
            out.push(AclLine {
                op: "+",
                index: j,
                rule: new[j].to_string(),
            });
            j += 1;
        }
    }
    out
}
