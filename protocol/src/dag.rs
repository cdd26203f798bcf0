//! The step graph of a template, computed once when the template loads.
//!
//! Steps are identified by their index in the template. Every list here is
//! sorted, so what the coordinator derives from it is deterministic.

/// A directed acyclic graph of steps: an edge runs from a dependency to the
/// step that depends on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dag {
    parents: Vec<Vec<usize>>,
    children: Vec<Vec<usize>>,
    ancestors: Vec<Vec<usize>>,
    descendants: Vec<Vec<usize>>,
    order: Vec<usize>,
}

impl Dag {
    /// Builds the graph from each step's dependencies, given as indices.
    ///
    /// # Errors
    ///
    /// Returns a cycle, as the list of steps along it with the first step
    /// repeated at the end (`[a, b, a]`), if the graph has one.
    pub fn new(dependencies: &[Vec<usize>]) -> Result<Self, Vec<usize>> {
        let n = dependencies.len();
        let mut parents: Vec<Vec<usize>> = dependencies.to_vec();
        for p in &mut parents {
            p.sort_unstable();
            p.dedup();
        }
        let mut children = vec![Vec::new(); n];
        for (step, ps) in parents.iter().enumerate() {
            for &p in ps {
                children[p].push(step);
            }
        }
        if let Some(cycle) = find_cycle(&children) {
            return Err(cycle);
        }
        let order = topological_order(&parents, &children);
        let ancestors = closure(&order, &parents);
        let reversed: Vec<usize> = order.iter().rev().copied().collect();
        let descendants = closure(&reversed, &children);
        Ok(Self {
            parents,
            children,
            ancestors,
            descendants,
            order,
        })
    }

    /// The number of steps.
    #[must_use]
    pub fn len(&self) -> usize {
        self.parents.len()
    }

    /// Whether the graph has no steps.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.parents.is_empty()
    }

    /// The steps `step` depends on directly.
    #[must_use]
    pub fn parents(&self, step: usize) -> &[usize] {
        &self.parents[step]
    }

    /// The steps that depend directly on `step`.
    #[must_use]
    pub fn children(&self, step: usize) -> &[usize] {
        &self.children[step]
    }

    /// Every step `step` depends on, directly or not.
    #[must_use]
    pub fn ancestors(&self, step: usize) -> &[usize] {
        &self.ancestors[step]
    }

    /// Every step that depends on `step`, directly or not.
    #[must_use]
    pub fn descendants(&self, step: usize) -> &[usize] {
        &self.descendants[step]
    }

    /// The steps with no dependencies: they start the task.
    pub fn roots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(|&s| self.parents[s].is_empty())
    }

    /// Every step, each after all of its dependencies.
    #[must_use]
    pub fn topological_order(&self) -> &[usize] {
        &self.order
    }
}

/// Kahn's algorithm, taking the lowest ready index first.
fn topological_order(parents: &[Vec<usize>], children: &[Vec<usize>]) -> Vec<usize> {
    let mut waiting: Vec<usize> = parents.iter().map(Vec::len).collect();
    let mut ready: std::collections::BTreeSet<usize> =
        (0..parents.len()).filter(|&s| waiting[s] == 0).collect();
    let mut order = Vec::with_capacity(parents.len());
    while let Some(step) = ready.pop_first() {
        order.push(step);
        for &c in &children[step] {
            waiting[c] -= 1;
            if waiting[c] == 0 {
                ready.insert(c);
            }
        }
    }
    order
}

/// For each step, the union of `edges` followed transitively; `order` must
/// visit every step after the steps its edges point to.
fn closure(order: &[usize], edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut sets = vec![Vec::new(); edges.len()];
    for &step in order {
        let mut all: Vec<usize> = edges[step].clone();
        for &e in &edges[step] {
            all.extend_from_slice(&sets[e]);
        }
        all.sort_unstable();
        all.dedup();
        sets[step] = all;
    }
    sets
}

/// A cycle in the graph, found by depth-first search, as a closed path.
fn find_cycle(children: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let n = children.len();
    let mut mark = vec![Mark::New; n];
    for start in 0..n {
        if mark[start] != Mark::New {
            continue;
        }
        // An explicit stack of (step, next child to visit): templates are
        // small, but a recursive walk would still be a needless stack risk.
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = Mark::OnPath;
        while let Some(&mut (step, ref mut next)) = path.last_mut() {
            if let Some(&child) = children[step].get(*next) {
                *next += 1;
                match mark[child] {
                    Mark::New => {
                        mark[child] = Mark::OnPath;
                        path.push((child, 0));
                    }
                    Mark::OnPath => {
                        let from = path.iter().position(|&(s, _)| s == child).unwrap_or(0);
                        let mut cycle: Vec<usize> = path[from..].iter().map(|&(s, _)| s).collect();
                        cycle.push(child);
                        return Some(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                mark[step] = Mark::Done;
                path.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// create → (billing, preferences) → welcome → update
    fn diamond() -> Dag {
        Dag::new(&[vec![], vec![0], vec![0], vec![1, 2], vec![3]]).unwrap()
    }

    #[test]
    fn diamond_relations() {
        let dag = diamond();
        assert_eq!(dag.roots().collect::<Vec<_>>(), [0]);
        assert_eq!(dag.children(0), [1, 2]);
        assert_eq!(dag.parents(3), [1, 2]);
        assert_eq!(dag.ancestors(3), [0, 1, 2]);
        assert_eq!(dag.ancestors(4), [0, 1, 2, 3]);
        assert_eq!(dag.descendants(1), [3, 4]);
        assert_eq!(dag.topological_order(), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn reports_a_cycle_as_a_closed_path() {
        let cycle = Dag::new(&[vec![], vec![0, 2], vec![1]]).unwrap_err();
        assert_eq!(cycle.first(), cycle.last());
        assert!(cycle.contains(&1) && cycle.contains(&2));
        assert_eq!(Dag::new(&[vec![0]]).unwrap_err(), [0, 0]);
    }

    /// A random graph of up to 30 steps: each step may depend on any step.
    fn any_graph() -> impl Strategy<Value = Vec<Vec<usize>>> {
        (1usize..30).prop_flat_map(|n| proptest::collection::vec(proptest::collection::vec(0..n, 0..4), n))
    }

    /// The obvious reference: a graph is acyclic iff repeatedly removing
    /// steps with no remaining dependencies removes them all.
    fn is_acyclic(deps: &[Vec<usize>]) -> bool {
        let mut removed = vec![false; deps.len()];
        loop {
            let next = (0..deps.len()).find(|&s| !removed[s] && deps[s].iter().all(|&d| removed[d]));
            match next {
                Some(s) => removed[s] = true,
                None => return removed.iter().all(|&r| r),
            }
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference(deps in any_graph()) {
            match Dag::new(&deps) {
                Ok(dag) => {
                    prop_assert!(is_acyclic(&deps));
                    let pos: Vec<usize> = {
                        let mut pos = vec![0; deps.len()];
                        for (i, &s) in dag.topological_order().iter().enumerate() { pos[s] = i; }
                        pos
                    };
                    prop_assert_eq!(dag.topological_order().len(), deps.len());
                    for (s, ds) in deps.iter().enumerate() {
                        for &d in ds {
                            prop_assert!(pos[d] < pos[s]);
                            prop_assert!(dag.ancestors(s).contains(&d));
                            prop_assert!(dag.descendants(d).contains(&s));
                        }
                    }
                }
                Err(cycle) => {
                    prop_assert!(!is_acyclic(&deps));
                    prop_assert!(cycle.len() >= 2);
                    prop_assert_eq!(cycle.first(), cycle.last());
                    // Each hop of the reported cycle is a real dependency edge.
                    for w in cycle.windows(2) {
                        prop_assert!(deps[w[1]].contains(&w[0]));
                    }
                }
            }
        }
    }
}
