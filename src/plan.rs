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

/// Why generated stages cannot join a plan: one needs a stage that waits for them.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{generator}` generated `{stage}`, which needs `{need}`; but `{need}` waits for what `{generator}` generates"
)]
pub struct NeedsDownstream {
    generator: String,
    stage: String,
    need: String,
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

    /// Joins the stages `generator` generated to the plan, after the stages it holds, with
    /// the stages of `file` they need that it lacks (and what those need). What needs the
    /// generator needs the generated stages too, so it waits for them. Returns the index of
    /// the first new stage.
    pub fn extend(
        &mut self,
        file: &Gzlfile,
        generator: usize,
        generated: Vec<Stage>,
    ) -> Result<usize, NeedsDownstream> {
        let first = self.nodes.len();
        let generated_names: Vec<String> = generated.iter().map(|s| s.name.clone()).collect();
        let mut by_name: HashMap<String, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (node.stage.name.clone(), i))
            .collect();
        // The new stages, needs first: generated ones in the order printed, and the
        // Gzlfile's stages they need that are not in the plan yet.
        let mut pending: HashMap<String, Stage> = generated
            .into_iter()
            .map(|stage| (stage.name.clone(), stage))
            .collect();
        let mut order: Vec<Stage> = Vec::new();
        for name in &generated_names {
            let mut stack = vec![(name.clone(), false)];
            while let Some((name, needs_done)) = stack.pop() {
                if by_name.contains_key(&name) {
                    continue;
                }
                let stage = match pending.get(&name) {
                    Some(stage) => stage.clone(),
                    None => match file.stage(&name) {
                        Some(stage) => stage.clone(),
                        // The generated text was checked against the Gzlfile's names.
                        None => continue,
                    },
                };
                if needs_done {
                    by_name.insert(name.clone(), first + order.len());
                    pending.remove(&name);
                    order.push(stage);
                    continue;
                }
                stack.push((name, true));
                for need in stage.needs.iter().rev() {
                    if !by_name.contains_key(need) {
                        stack.push((need.clone(), false));
                    }
                }
            }
        }
        let downstream = self.downstream(generator);
        for stage in &order {
            for need in &stage.needs {
                if by_name.get(need).is_some_and(|i| downstream.contains(i)) {
                    return Err(NeedsDownstream {
                        generator: self.nodes[generator].stage.name.clone(),
                        stage: stage.name.clone(),
                        need: need.clone(),
                    });
                }
            }
        }
        for stage in order {
            let index = self.nodes.len();
            let needs: Vec<usize> = stage
                .needs
                .iter()
                .filter_map(|need| by_name.get(need).copied())
                .collect();
            for &need in &needs {
                self.nodes[need].dependents.push(index);
            }
            self.nodes.push(Node {
                stage,
                needs,
                dependents: Vec::new(),
            });
        }
        let waiting: Vec<usize> = self.nodes[generator].dependents.clone();
        for name in &generated_names {
            let index = by_name[name];
            for &dependent in &waiting {
                self.nodes[dependent].needs.push(index);
                self.nodes[index].dependents.push(dependent);
            }
        }
        Ok(first)
    }

    /// Every stage that needs `index`, directly or through others.
    fn downstream(&self, index: usize) -> std::collections::HashSet<usize> {
        let mut seen = std::collections::HashSet::new();
        let mut stack = self.nodes[index].dependents.clone();
        while let Some(next) = stack.pop() {
            if seen.insert(next) {
                stack.extend(self.nodes[next].dependents.iter().copied());
            }
        }
        seen
    }

    /// The stages. A plan starts in a valid order, every stage after all it needs; stages
    /// joined by [`Plan::extend`] come after, and what waits for them may come before.
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
        // Dependents first: reverse of an order where every stage comes after its needs,
        // which extended plans do not keep by index.
        let mut unmet: Vec<usize> = self.nodes.iter().map(|n| n.needs.len()).collect();
        let mut order: Vec<usize> = (0..self.nodes.len()).filter(|&i| unmet[i] == 0).collect();
        let mut at = 0;
        while at < order.len() {
            for &dependent in &self.nodes[order[at]].dependents {
                unmet[dependent] -= 1;
                if unmet[dependent] == 0 {
                    order.push(dependent);
                }
            }
            at += 1;
        }
        let mut weights = vec![0u64; self.nodes.len()];
        for &i in order.iter().rev() {
            let longest_after = self.nodes[i]
                .dependents
                .iter()
                .map(|&d| weights[d])
                .max()
                .unwrap_or(0);
            weights[i] = weight(&self.nodes[i].stage).saturating_add(longest_after);
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
    fn generated_stages_join_and_what_needs_the_generator_waits_for_them() {
        let file = Gzlfile::parse(
            std::path::Path::new("Gzlfile"),
            "build:\n    true\nlint:\n    true\nshards: build\n    @generates\n    true\nreport: shards\n    true\n".into(),
        )
        .unwrap();
        let mut plan = Plan::new(&file, &["report".to_string()]).unwrap();
        assert_eq!(names(&plan), ["build", "shards", "report"]);
        let generated = Gzlfile::generated(
            "shards",
            "t1: build lint\n    true\nt2: t1\n    true\n",
            &["build", "lint", "shards", "report"],
        )
        .unwrap();
        let first = plan.extend(&file, 1, generated).unwrap();
        assert_eq!(first, 3);
        assert_eq!(
            names(&plan),
            ["build", "shards", "report", "lint", "t1", "t2"]
        );
        let needs = |i: usize| -> Vec<&str> {
            plan.nodes()[i]
                .needs
                .iter()
                .map(|&n| plan.nodes()[n].stage.name.as_str())
                .collect()
        };
        assert_eq!(needs(2), ["shards", "t1", "t2"]);
        assert_eq!(needs(4), ["build", "lint"]);
        let weights = plan.critical_path_weights(|_| 1);
        assert_eq!(weights, [4, 2, 1, 4, 3, 2]);

        let loop_back =
            Gzlfile::generated("shards", "t3: report\n    true\n", &["report"]).unwrap();
        assert!(matches!(
            plan.extend(&file, 1, loop_back),
            Err(NeedsDownstream { .. })
        ));
    }

    #[test]
    fn a_chain_has_no_parallelism() {
        assert!(!plan("a:\n  x\nb: a\n  x\nc: b\n  x\n", &[]).has_parallelism());
        assert!(plan(DIAMOND, &[]).has_parallelism());
    }
}
