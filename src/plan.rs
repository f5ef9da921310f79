//! The plan: the stages a run executes, as a validated graph in a valid order.

use std::collections::HashMap;

use crate::stagefile::{Gzlfile, Stage, suggest};

/// The stages to run and how they depend on each other, in topological order.
#[derive(Debug, Clone)]
pub struct Plan {
    nodes: Vec<Node>,
}

/// A stage in the plan.
#[derive(Debug, Clone)]
pub struct Node {
    pub stage: Stage,
    /// Indices (into the plan) of the stages this one needs.
    pub needs: Vec<usize>,
    /// Indices of the stages that need this one.
    pub dependents: Vec<usize>,
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("no stage named `{name}` in {gzlfile}{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownStage {
        name: String,
        gzlfile: String,
        suggestion: Option<String>,
    },
    #[error("{gzlfile} has no stages")]
    Empty { gzlfile: String },
}

impl Plan {
    /// The stages named in `targets` and all they need, transitively; every stage when
    /// `targets` is empty. The file must be valid (no unknown needs, no cycles).
    pub fn new(file: &Gzlfile, targets: &[String]) -> Result<Self, PlanError> {
        let gzlfile = file.path.display().to_string();
        if file.stages.is_empty() {
            return Err(PlanError::Empty { gzlfile });
        }
        let by_name: HashMap<&str, usize> = file
            .stages
            .iter()
            .enumerate()
            .map(|(i, stage)| (stage.name.as_str(), i))
            .collect();
        let roots: Vec<usize> = if targets.is_empty() {
            (0..file.stages.len()).collect()
        } else {
            targets
                .iter()
                .map(|name| {
                    by_name
                        .get(name.as_str())
                        .copied()
                        .ok_or_else(|| PlanError::UnknownStage {
                            name: name.clone(),
                            gzlfile: gzlfile.clone(),
                            suggestion: suggest(name, file.stages.iter().map(|s| s.name.as_str()))
                                .map(str::to_string),
                        })
                })
                .collect::<Result<_, _>>()?
        };

        // Depth-first, needs before the stage, otherwise in file order: the order people expect.
        let mut order: Vec<usize> = Vec::new();
        let mut placed = vec![false; file.stages.len()];
        for root in roots {
            let mut stack = vec![(root, false)];
            while let Some((index, needs_done)) = stack.pop() {
                if placed[index] {
                    continue;
                }
                if needs_done {
                    placed[index] = true;
                    order.push(index);
                    continue;
                }
                stack.push((index, true));
                for need in file.stages[index].needs.iter().rev() {
                    if let Some(&need_index) = by_name.get(need.as_str())
                        && !placed[need_index]
                    {
                        stack.push((need_index, false));
                    }
                }
            }
        }

        let position: HashMap<usize, usize> = order
            .iter()
            .enumerate()
            .map(|(pos, &index)| (index, pos))
            .collect();
        let mut nodes: Vec<Node> = order
            .iter()
            .map(|&index| {
                let stage = file.stages[index].clone();
                let needs = stage
                    .needs
                    .iter()
                    .filter_map(|need| by_name.get(need.as_str()))
                    .filter_map(|need_index| position.get(need_index).copied())
                    .collect();
                Node {
                    stage,
                    needs,
                    dependents: Vec::new(),
                }
            })
            .collect();
        for i in 0..nodes.len() {
            for need in nodes[i].needs.clone() {
                nodes[need].dependents.push(i);
            }
        }
        Ok(Plan { nodes })
    }

    /// The stages in a valid order: every stage after all it needs.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// For each stage, the weight of the heaviest path from it to the end of the graph,
    /// itself included: the scheduler starts the stage with the longest remaining path first.
    pub fn critical_path_weights(&self, weight: impl Fn(&Stage) -> u64) -> Vec<u64> {
        let mut weights = vec![0u64; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate().rev() {
            let longest_after = node
                .dependents
                .iter()
                .map(|&d| weights[d])
                .max()
                .unwrap_or(0);
            weights[i] = weight(&node.stage).saturating_add(longest_after);
        }
        weights
    }

    /// Whether two stages of the plan could ever run at the same time. A plan whose
    /// topological order is unique (each stage needs the one before it) runs one at a time.
    pub fn has_parallelism(&self) -> bool {
        self.nodes
            .iter()
            .enumerate()
            .skip(1)
            .any(|(i, node)| !node.needs.contains(&(i - 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn plan(source: &str, targets: &[&str]) -> Plan {
        let file = Gzlfile::parse(Path::new("Gzlfile"), source.to_string()).expect("valid Gzlfile");
        let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
        Plan::new(&file, &targets).expect("valid plan")
    }

    fn names(plan: &Plan) -> Vec<&str> {
        plan.nodes().iter().map(|n| n.stage.name.as_str()).collect()
    }

    const DIAMOND: &str = "top: left right\n  echo top\nleft: base\n  echo l\nright: base\n  echo r\nbase:\n  echo b\nother:\n  echo o\n";

    #[test]
    fn orders_needs_first_then_file_order() {
        assert_eq!(
            names(&plan(DIAMOND, &[])),
            ["base", "left", "right", "top", "other"]
        );
    }

    #[test]
    fn a_target_brings_only_what_it_needs() {
        assert_eq!(names(&plan(DIAMOND, &["left"])), ["base", "left"]);
    }

    #[test]
    fn critical_path_weights_follow_the_heaviest_branch() {
        let plan = plan(DIAMOND, &[]);
        let weights =
            plan.critical_path_weights(|stage| if stage.name == "right" { 10 } else { 1 });
        assert_eq!(weights, [12, 2, 11, 1, 1]);
    }

    #[test]
    fn a_chain_has_no_parallelism() {
        assert!(!plan("a:\n  x\nb: a\n  x\nc: b\n  x\n", &[]).has_parallelism());
        assert!(plan(DIAMOND, &[]).has_parallelism());
    }
}
