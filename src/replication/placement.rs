//! Where an evaluation's replicas go: rendezvous hashing of (evaluation,
//! node), so that every node would pick the same replicas from the same
//! members and evaluations spread evenly. Pure, no I/O.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The nodes to add to `current` so that it holds `want` replicas, chosen
/// among `live` without `me`, highest rendezvous score first.
pub fn top_up(evaluation: Uuid, me: &str, live: &[String], current: &[String], want: usize) -> Vec<String> {
    let missing = want.saturating_sub(current.len());
    let mut candidates: Vec<(u64, &String)> =
        live.iter().filter(|n| n.as_str() != me && !current.contains(n)).map(|n| (score(evaluation, n), n)).collect();
    candidates.sort_by(|a, b| b.cmp(a));
    candidates.dedup_by(|a, b| a.1 == b.1);
    candidates.into_iter().take(missing).map(|(_, n)| n.clone()).collect()
}

fn score(evaluation: Uuid, node: &str) -> u64 {
    let digest = Sha256::new().chain_update(evaluation.as_bytes()).chain_update(node.as_bytes()).finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("127.0.0.1:{}", 5001 + i)).collect()
    }

    #[test]
    fn picks_want_replicas_never_itself() {
        let live = nodes(5);
        let picked = top_up(Uuid::new_v4(), &live[0], &live, &[], 2);
        assert_eq!(picked.len(), 2);
        assert!(!picked.contains(&live[0]));
        assert_ne!(picked[0], picked[1]);
    }

    #[test]
    fn keeps_current_replicas_and_only_fills_the_gap() {
        let live = nodes(5);
        let id = Uuid::new_v4();
        let current = vec![live[3].clone()];
        let picked = top_up(id, &live[0], &live, &current, 2);
        assert_eq!(picked.len(), 1);
        assert!(!picked.contains(&live[3]) && !picked.contains(&live[0]));
        assert!(top_up(id, &live[0], &live, &[live[1].clone(), live[2].clone()], 2).is_empty());
    }

    #[test]
    fn every_node_picks_the_same_and_a_small_cluster_gives_what_it_has() {
        let live = nodes(6);
        let id = Uuid::new_v4();
        let mut shuffled = live.clone();
        shuffled.reverse();
        assert_eq!(top_up(id, "elsewhere", &live, &[], 3), top_up(id, "elsewhere", &shuffled, &[], 3));
        assert_eq!(top_up(id, &live[0], &live[..2], &[], 2), vec![live[1].clone()]);
        assert!(top_up(id, &live[0], &live[..1], &[], 2).is_empty());
    }

    #[test]
    fn evaluations_spread_over_the_nodes() {
        let live = nodes(4);
        let mut counts = [0usize; 4];
        for _ in 0..400 {
            let picked = top_up(Uuid::new_v4(), "elsewhere", &live, &[], 1);
            counts[live.iter().position(|n| *n == picked[0]).unwrap()] += 1;
        }
        assert!(counts.iter().all(|c| (60..=140).contains(c)), "{counts:?}");
    }
}
