//! Rules for changing and removing nodes (`POST /nodes/{id}/update`, `DELETE /nodes/{id}`).
//!
//! Pure functions over the current view: they return the object(s) to write or a clear error,
//! and never touch the store themselves, so a refused request changes nothing.

use shoal_types::{ApiError, Node, NodeRole, NodeSpec, NodeState};

/// What the caller knows about Raft membership when judging a role change.
pub struct Membership {
    /// Node IDs of the managers currently in Raft.
    pub managers: Vec<String>,
    /// Of those, the ones the leader currently reaches (including itself).
    pub reachable: Vec<String>,
}

impl Membership {
    fn quorum_after_removing(&self, node_id: &str) -> bool {
        let remaining: Vec<&String> = self.managers.iter().filter(|m| *m != node_id).collect();
        if remaining.is_empty() {
            return false;
        }
        let reachable = remaining
            .iter()
            .filter(|m| self.reachable.iter().any(|r| r == **m))
            .count();
        reachable > remaining.len() / 2
    }
}

/// Validate a node spec update and return the node as it must be written.
/// `version` is the `?version=` the client read; a stale one is refused by the store.
pub fn plan_update(
    node: &Node,
    new_spec: NodeSpec,
    membership: &Membership,
) -> Result<Node, ApiError> {
    for key in new_spec.annotations.labels.keys() {
        if key.is_empty() {
            return Err(ApiError::invalid_argument(
                "node label keys must not be empty",
            ));
        }
    }
    if node.spec.role == NodeRole::Manager && new_spec.role == NodeRole::Worker {
        check_demote(node, membership)?;
    }
    let mut updated = node.clone();
    updated.spec = new_spec;
    Ok(updated)
}

fn check_demote(node: &Node, membership: &Membership) -> Result<(), ApiError> {
    let managers = membership.managers.len();
    let is_member = membership.managers.iter().any(|m| m == &node.id);
    if managers <= 1 && (is_member || managers == 0) {
        return Err(ApiError::invalid_argument(
            "attempting to demote the last manager of the swarm",
        ));
    }
    if is_member && !membership.quorum_after_removing(&node.id) {
        return Err(ApiError::invalid_argument(format!(
            "can't demote {}: it would result in a loss of quorum",
            node.id
        )));
    }
    Ok(())
}

/// Check that a node may be removed; returns nothing to write but the deletion itself.
pub fn check_remove(node: &Node, force: bool, membership: &Membership) -> Result<(), ApiError> {
    let in_raft = membership.managers.iter().any(|m| m == &node.id);
    if node.spec.role == NodeRole::Manager || in_raft {
        if !force {
            return Err(ApiError::invalid_argument(format!(
                "rpc error: node {} is a cluster manager and is a member of the raft cluster. \
                 It must be demoted to worker before removal",
                node.id
            )));
        }
        if in_raft && !membership.quorum_after_removing(&node.id) {
            return Err(ApiError::invalid_argument(format!(
                "can't remove {}: it would result in a loss of quorum",
                node.id
            )));
        }
    }
    if node.status.state == NodeState::Ready && !force {
        return Err(ApiError::invalid_argument(format!(
            "node {} is not down and can't be removed (use --force to remove it anyway)",
            node.id
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, role: NodeRole, state: NodeState) -> Node {
        let mut n = Node {
            id: id.into(),
            ..Default::default()
        };
        n.spec.role = role;
        n.status.state = state;
        n
    }

    fn members(all: &[&str], reachable: &[&str]) -> Membership {
        Membership {
            managers: all.iter().map(|s| s.to_string()).collect(),
            reachable: reachable.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn last_manager_cannot_be_demoted() {
        let n = node("a", NodeRole::Manager, NodeState::Ready);
        let mut spec = n.spec.clone();
        spec.role = NodeRole::Worker;
        let err = plan_update(&n, spec, &members(&["a"], &["a"])).unwrap_err();
        assert!(err.message.contains("last manager"), "{}", err.message);
    }

    #[test]
    fn demote_refused_when_quorum_would_be_lost() {
        // 3 managers, c unreachable: removing a leaves b and c with only b reachable (1 of 2).
        let n = node("a", NodeRole::Manager, NodeState::Ready);
        let mut spec = n.spec.clone();
        spec.role = NodeRole::Worker;
        let err =
            plan_update(&n, spec.clone(), &members(&["a", "b", "c"], &["a", "b"])).unwrap_err();
        assert!(err.message.contains("quorum"), "{}", err.message);
        // All reachable: fine.
        let ok = plan_update(&n, spec, &members(&["a", "b", "c"], &["a", "b", "c"])).unwrap();
        assert_eq!(ok.spec.role, NodeRole::Worker);
    }

    #[test]
    fn remove_rules() {
        let m = members(&["a"], &["a"]);
        let worker_up = node("w", NodeRole::Worker, NodeState::Ready);
        assert!(check_remove(&worker_up, false, &m).is_err());
        assert!(check_remove(&worker_up, true, &m).is_ok());
        let worker_down = node("w", NodeRole::Worker, NodeState::Down);
        assert!(check_remove(&worker_down, false, &m).is_ok());
        let mgr = node("a", NodeRole::Manager, NodeState::Down);
        let err = check_remove(&mgr, false, &m).unwrap_err();
        assert!(err.message.contains("demoted"), "{}", err.message);
    }

    #[test]
    fn empty_label_key_refused() {
        let n = node("w", NodeRole::Worker, NodeState::Ready);
        let mut spec = n.spec.clone();
        spec.annotations.labels.insert(String::new(), "x".into());
        assert!(plan_update(&n, spec, &members(&["a"], &["a"])).is_err());
    }
}
