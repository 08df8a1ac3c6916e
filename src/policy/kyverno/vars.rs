//! Kyverno variables: the JSON context a rule sees (`request`, `images`, `element`, context
//! entries, an attestation's predicate), `{{ … }}` substitution, and JMESPath evaluation.
//!
//! Offline, only part of the context is real: the container image (and what follows from it)
//! is, a live Pod's other fields, the requesting user, ConfigMaps and API calls are not. Every
//! expression is therefore checked before it runs: the document paths it reads are taken from
//! its syntax tree and each must lie in a known part of the context, otherwise the expression
//! is "unknown" and the caller reports the rule as not evaluated instead of guessing.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use jmespath::ast::Ast;
use jmespath::{Context, ErrorReason, JmespathError, Rcvar, Runtime, Variable};
use regex::Regex;
use serde_json::Value;

use super::wildcard;

/// Why a variable could not be resolved offline.
pub type Unknown = String;

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    let mut rt = Runtime::new();
    rt.register_builtin_functions();
    register_kyverno_functions(&mut rt);
    rt
});

/// Compiles `expr` with the JMESPath functions Kyverno adds that the engine supports.
pub fn compile(expr: &str) -> Result<jmespath::Expression<'static>, String> {
    RUNTIME.compile(expr).map_err(|e| e.to_string())
}

/// `{{…}}` at the start of the string or after a character other than `\` (Kyverno's
/// `RegexVariables`); inner single-brace groups are allowed.
static VARIABLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(^|[^\\])(\{\{(?:\{[^{}]*\}|[^{}])*\}\})").expect("static regex")
});

/// Whether `s` contains a `{{ … }}` variable.
pub fn has_variables(s: &str) -> bool {
    VARIABLE.is_match(s)
}

/// The variables a rule can see, and which parts of them are known.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// The context document's top-level entries.
    doc: serde_json::Map<String, Value>,
    /// Field paths whose whole subtree is known.
    known: Vec<Vec<String>>,
    /// Field paths whose node may be read as a whole (a container list: its elements' other
    /// fields are not known, but reading the list itself is fine).
    exact: Vec<Vec<String>>,
    /// Top-level names that cannot be known, with the reason.
    unknown: BTreeMap<String, String>,
    /// `element` stands for an element of these paths.
    aliases: BTreeMap<String, Vec<Vec<String>>>,
    /// Top-level names that are not defined read the predicate (attestation conditions),
    /// which is known completely.
    open: bool,
}

fn path(dotted: &str) -> Vec<String> {
    dotted.split('.').map(str::to_string).collect()
}

impl Scope {
    pub fn new() -> Scope {
        Scope::default()
    }

    /// Adds a top-level variable whose whole value is known.
    pub fn set_known(&mut self, name: &str, value: Value) {
        self.doc.insert(name.to_string(), value);
        self.unknown.remove(name);
        self.known.push(vec![name.to_string()]);
    }

    /// Adds a top-level variable of which only `known` (dotted, relative to the document root)
    /// and `exact` paths are known.
    pub fn set_partial(&mut self, name: &str, value: Value, known: &[String], exact: &[String]) {
        self.doc.insert(name.to_string(), value);
        self.unknown.remove(name);
        self.known.extend(known.iter().map(|k| path(k)));
        self.exact.extend(exact.iter().map(|k| path(k)));
    }

    /// Marks a top-level name as unknowable, with the reason (a ConfigMap context entry…).
    pub fn set_unknown(&mut self, name: &str, reason: String) {
        self.doc.remove(name);
        self.unknown.insert(name.to_string(), reason);
    }

    /// `name` (e.g. `element`) is an element of the list read by `list_expr`.
    pub fn set_element(&mut self, name: &str, value: Value, list_expr: &str) {
        let targets = compile(list_expr)
            .map(|e| read_paths(e.as_ast()))
            .unwrap_or_default();
        self.doc.insert(name.to_string(), value);
        self.unknown.remove(name);
        self.aliases.insert(name.to_string(), targets);
    }

    /// Undefined top-level names read the (completely known) data merged into the root.
    pub fn set_open(&mut self, object: &serde_json::Map<String, Value>) {
        for (k, v) in object {
            if !self.doc.contains_key(k) && !self.unknown.contains_key(k) {
                self.doc.insert(k.clone(), v.clone());
                self.known.push(vec![k.clone()]);
            }
        }
        self.open = true;
    }

    pub fn document(&self) -> Value {
        Value::Object(self.doc.clone())
    }

    /// Evaluates a JMESPath expression, if everything it reads is known.
    pub fn query(&self, expr: &str) -> Result<Value, Unknown> {
        let compiled =
            compile(expr).map_err(|e| format!("invalid JMESPath expression `{expr}`: {e}"))?;
        for p in read_paths(compiled.as_ast()) {
            self.check_path(&p)
                .map_err(|why| format!("`{{{{{expr}}}}}` {why}"))?;
        }
        let data = Variable::try_from(self.document())
            .map_err(|e| format!("cannot build the context: {e}"))?;
        let result = compiled
            .search(data)
            .map_err(|e| format!("`{{{{{expr}}}}}` failed: {e}"))?;
        serde_json::to_value(&*result).map_err(|e| format!("`{{{{{expr}}}}}`: {e}"))
    }

    fn check_path(&self, p: &[String]) -> Result<(), String> {
        let Some(first) = p.first() else {
            return Err("reads the whole context".to_string());
        };
        if let Some(reason) = self.unknown.get(first) {
            return Err(reason.clone());
        }
        if let Some(targets) = self.aliases.get(first) {
            if targets.is_empty() {
                return Err(format!("reads {first}, whose list is not known"));
            }
            for t in targets {
                let mut q = t.clone();
                q.extend(p[1..].iter().cloned());
                self.check_path(&q)?;
            }
            return Ok(());
        }
        if self.known.iter().any(|k| p.starts_with(k)) || self.exact.iter().any(|e| e == p) {
            return Ok(());
        }
        if self.open && !self.doc.contains_key(first) && !RESERVED.contains(&first.as_str()) {
            return Ok(());
        }
        Err(unknown_reason(p))
    }

    /// Substitutes every `{{ … }}` in a JSON value (strings at any depth). A string that is
    /// exactly one variable takes the variable's value and type; otherwise the value is
    /// spliced into the text (JSON for non-strings), as Kyverno does.
    pub fn substitute(&self, v: &Value) -> Result<Value, Unknown> {
        match v {
            Value::String(s) => self.substitute_str(s),
            Value::Array(items) => items
                .iter()
                .map(|i| self.substitute(i))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Value::Object(map) => {
                let mut out = serde_json::Map::new();
                for (k, val) in map {
                    if has_variables(k) {
                        return Err(format!(
                            "variables in keys (`{k}`) are not supported offline"
                        ));
                    }
                    out.insert(k.clone(), self.substitute(val)?);
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    pub fn substitute_str(&self, s: &str) -> Result<Value, Unknown> {
        let mut value = s.to_string();
        // Nested variables resolve inside out; bound the loop in case a value brings new ones.
        for _ in 0..16 {
            let Some(caps) = VARIABLE.captures(&value) else {
                break;
            };
            let Some(var) = caps.get(2) else { break };
            let var_text = var.as_str().to_string();
            let mut expr = var_text
                .trim_start_matches("{{")
                .trim_end_matches("}}")
                .trim()
                .to_string();
            let shallow = expr.starts_with('-');
            if shallow {
                expr = expr[1..].trim().to_string();
            }
            if expr == "@" || expr.contains("@.") {
                return Err(format!(
                    "`{var_text}` refers to the pattern's own position, which is not supported offline"
                ));
            }
            let resolved = self.query(&expr)?;
            if value == var_text {
                return Ok(resolved);
            }
            let mut text = match &resolved {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if shallow {
                text = text.replace("{{", "\\{{");
            }
            value = value.replacen(&var_text, &text, 1);
            if shallow {
                break;
            }
        }
        Ok(Value::String(value.replace("\\{{", "{{")))
    }
}

/// Top-level names Kyverno defines itself.
const RESERVED: [&str; 8] = [
    "request",
    "images",
    "image",
    "element",
    "elementIndex",
    "serviceAccountName",
    "serviceAccountNamespace",
    "target",
];

fn unknown_reason(p: &[String]) -> String {
    let dotted = p.join(".");
    match p.first().map(String::as_str) {
        Some("request") if p.get(1).is_some_and(|s| s == "object" || s == "oldObject") => {
            format!(
                "reads {dotted}: a Pod's fields other than its container images are not known to an image gate"
            )
        }
        Some("request") => format!(
            "reads {dotted}: the admission request's user and details are not known offline"
        ),
        Some("serviceAccountName" | "serviceAccountNamespace") => {
            format!("reads {dotted}: the requesting service account is not known offline")
        }
        Some("element" | "elementIndex") => {
            format!("reads {dotted} outside a foreach loop")
        }
        Some(name) => format!("reads {dotted}: `{name}` is not a variable the policy defines"),
        None => "reads the whole context".to_string(),
    }
}

/// The document paths (field names only; array indexes and projections are left out) an
/// expression reads, keeping only the longest: a path that is a prefix of another was only
/// walked through.
pub fn read_paths(ast: &Ast) -> Vec<Vec<String>> {
    let mut touched = Vec::new();
    walk(ast, &[Vec::new()], &mut touched);
    let mut maximal: Vec<Vec<String>> = Vec::new();
    for p in &touched {
        let extended = touched
            .iter()
            .any(|q| q.len() > p.len() && q.starts_with(p));
        if !extended && !maximal.contains(p) {
            maximal.push(p.clone());
        }
    }
    maximal
}

/// Returns the paths the node's value comes from (empty for computed values).
fn walk(ast: &Ast, base: &[Vec<String>], touched: &mut Vec<Vec<String>>) -> Vec<Vec<String>> {
    match ast {
        Ast::Field { name, .. } => {
            let out: Vec<Vec<String>> = base
                .iter()
                .map(|b| {
                    let mut p = b.clone();
                    p.push(name.clone());
                    p
                })
                .collect();
            touched.extend(out.iter().cloned());
            out
        }
        Ast::Identity { .. } => {
            touched.extend(base.iter().cloned());
            base.to_vec()
        }
        Ast::Subexpr { lhs, rhs, .. } | Ast::Projection { lhs, rhs, .. } => {
            let left = walk(lhs, base, touched);
            walk(rhs, &left, touched)
        }
        Ast::Flatten { node, .. } | Ast::ObjectValues { node, .. } => walk(node, base, touched),
        Ast::Index { .. } | Ast::Slice { .. } => base.to_vec(),
        Ast::Literal { .. } => Vec::new(),
        Ast::MultiList { elements, .. } => elements
            .iter()
            .flat_map(|e| walk(e, base, touched))
            .collect(),
        Ast::MultiHash { elements, .. } => {
            for kv in elements {
                walk(&kv.value, base, touched);
            }
            Vec::new()
        }
        Ast::Not { node, .. } => {
            walk(node, base, touched);
            Vec::new()
        }
        Ast::Comparison { lhs, rhs, .. } => {
            walk(lhs, base, touched);
            walk(rhs, base, touched);
            Vec::new()
        }
        Ast::And { lhs, rhs, .. } | Ast::Or { lhs, rhs, .. } => {
            let mut out = walk(lhs, base, touched);
            out.extend(walk(rhs, base, touched));
            out
        }
        Ast::Condition {
            predicate, then, ..
        } => {
            walk(predicate, base, touched);
            walk(then, base, touched)
        }
        Ast::Expref { ast, .. } => walk(ast, base, touched),
        Ast::Function { name, args, .. } => {
            let mut data_args = Vec::new();
            for a in args {
                if !matches!(a, Ast::Expref { .. }) {
                    data_args.push(walk(a, base, touched));
                }
            }
            // An expression reference is applied to the elements of the first data argument.
            let elements = data_args.first().cloned().unwrap_or_default();
            for a in args {
                if let Ast::Expref { ast, .. } = a {
                    walk(ast, &elements, touched);
                }
            }
            let passes_through = matches!(
                name.as_str(),
                "to_array"
                    | "values"
                    | "sort"
                    | "sort_by"
                    | "reverse"
                    | "not_null"
                    | "min_by"
                    | "max_by"
                    | "merge"
            );
            if passes_through {
                data_args.into_iter().flatten().collect()
            } else {
                Vec::new()
            }
        }
    }
}

fn fail(ctx: &Context<'_>, message: String) -> JmespathError {
    JmespathError::new(ctx.expression, ctx.offset, ErrorReason::Parse(message))
}

fn string_arg(
    args: &[Rcvar],
    i: usize,
    ctx: &Context<'_>,
    f: &str,
) -> Result<String, JmespathError> {
    match args.get(i).map(|a| &**a) {
        Some(Variable::String(s)) => Ok(s.clone()),
        Some(Variable::Number(n)) => Ok(n.to_string()),
        _ => Err(fail(
            ctx,
            format!("{f}: argument {} must be a string", i + 1),
        )),
    }
}

fn out(v: Variable) -> Result<Rcvar, JmespathError> {
    Ok(Rcvar::new(v))
}

/// The few Kyverno JMESPath extensions image policies use. An expression calling any other
/// Kyverno function fails to run and the rule is reported as not evaluated.
fn register_kyverno_functions(rt: &mut Runtime) {
    rt.register_function(
        "to_upper",
        Box::new(|args: &[Rcvar], ctx: &mut Context<'_>| {
            out(Variable::String(
                string_arg(args, 0, ctx, "to_upper")?.to_uppercase(),
            ))
        }),
    );
    rt.register_function(
        "to_lower",
        Box::new(|args: &[Rcvar], ctx: &mut Context<'_>| {
            out(Variable::String(
                string_arg(args, 0, ctx, "to_lower")?.to_lowercase(),
            ))
        }),
    );
    rt.register_function(
        "split",
        Box::new(|args: &[Rcvar], ctx: &mut Context<'_>| {
            let s = string_arg(args, 0, ctx, "split")?;
            let sep = string_arg(args, 1, ctx, "split")?;
            let parts: Vec<Rcvar> = if sep.is_empty() {
                s.chars()
                    .map(|c| Rcvar::new(Variable::String(c.to_string())))
                    .collect()
            } else {
                s.split(sep.as_str())
                    .map(|p| Rcvar::new(Variable::String(p.to_string())))
                    .collect()
            };
            out(Variable::Array(parts))
        }),
    );
    rt.register_function(
        "regex_match",
        Box::new(|args: &[Rcvar], ctx: &mut Context<'_>| {
            let re = string_arg(args, 0, ctx, "regex_match")?;
            let s = string_arg(args, 1, ctx, "regex_match")?;
            let re = Regex::new(&re).map_err(|e| fail(ctx, format!("regex_match: {e}")))?;
            out(Variable::Bool(re.is_match(&s)))
        }),
    );
    rt.register_function(
        "pattern_match",
        Box::new(|args: &[Rcvar], ctx: &mut Context<'_>| {
            let p = string_arg(args, 0, ctx, "pattern_match")?;
            let s = string_arg(args, 1, ctx, "pattern_match")?;
            out(Variable::Bool(wildcard::matches(&p, &s)))
        }),
    );
    rt.register_function(
        "trim",
        Box::new(|args: &[Rcvar], ctx: &mut Context<'_>| {
            let s = string_arg(args, 0, ctx, "trim")?;
            let cut: Vec<char> = string_arg(args, 1, ctx, "trim")?.chars().collect();
            out(Variable::String(
                s.trim_matches(|c| cut.contains(&c)).to_string(),
            ))
        }),
    );
    rt.register_function(
        "trim_prefix",
        Box::new(|args: &[Rcvar], ctx: &mut Context<'_>| {
            let s = string_arg(args, 0, ctx, "trim_prefix")?;
            let prefix = string_arg(args, 1, ctx, "trim_prefix")?;
            out(Variable::String(
                s.strip_prefix(prefix.as_str()).unwrap_or(&s).to_string(),
            ))
        }),
    );
    rt.register_function(
        "equal_fold",
        Box::new(|args: &[Rcvar], ctx: &mut Context<'_>| {
            let a = string_arg(args, 0, ctx, "equal_fold")?;
            let b = string_arg(args, 1, ctx, "equal_fold")?;
            out(Variable::Bool(a.to_lowercase() == b.to_lowercase()))
        }),
    );
    rt.register_function(
        "replace_all",
        Box::new(|args: &[Rcvar], ctx: &mut Context<'_>| {
            let s = string_arg(args, 0, ctx, "replace_all")?;
            let old = string_arg(args, 1, ctx, "replace_all")?;
            let new = string_arg(args, 2, ctx, "replace_all")?;
            out(Variable::String(s.replace(old.as_str(), &new)))
        }),
    );
    rt.register_function(
        "truncate",
        Box::new(|args: &[Rcvar], ctx: &mut Context<'_>| {
            let s = string_arg(args, 0, ctx, "truncate")?;
            let n = args
                .get(1)
                .and_then(|a| a.as_number())
                .ok_or_else(|| fail(ctx, "truncate: argument 2 must be a number".into()))?;
            let n = if n < 0.0 { 0 } else { n as usize };
            out(Variable::String(s.chars().take(n).collect()))
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> Scope {
        let mut s = Scope::new();
        s.set_known(
            "images",
            json!({"containers": {"app": {"registry": "ghcr.io", "name": "app"}}}),
        );
        s.set_partial(
            "request",
            json!({"namespace": "prod", "object": {"spec": {"containers": [{"name": "app", "image": "ghcr.io/o/app:v1"}]}, "metadata": {"namespace": "prod"}}}),
            &[
                "request.namespace".into(),
                "request.object.spec.containers.image".into(),
                "request.object.spec.initContainers.image".into(),
                "request.object.metadata.namespace".into(),
            ],
            &["request.object.spec.containers".into()],
        );
        s.set_unknown("keys", "reads ConfigMap default/keys".into());
        s
    }

    #[test]
    fn reads_the_sample_expression() {
        let s = scope();
        assert_eq!(
            s.query("images.[containers, initContainers, ephemeralContainers][].*.name[]")
                .unwrap(),
            json!(["app"])
        );
        assert_eq!(
            s.query("request.object.spec.[containers, initContainers][].image")
                .unwrap(),
            json!(["ghcr.io/o/app:v1"])
        );
        assert_eq!(
            s.query("length(request.object.spec.containers)").unwrap(),
            json!(1)
        );
    }

    #[test]
    fn refuses_unknown_parts() {
        let s = scope();
        let e = s.query("request.object.metadata.labels.app").unwrap_err();
        assert!(e.contains("request.object.metadata.labels.app"), "{e}");
        let e = s.query("keys.data.production").unwrap_err();
        assert!(e.contains("ConfigMap"), "{e}");
        assert!(s.query("request.userInfo.username").is_err());
        assert!(
            s.query("request.object.spec.containers[].securityContext")
                .is_err()
        );
        assert!(s.query("@").is_err());
        assert!(
            s.query("request.object.spec.containers[?image=='x'].name")
                .is_err()
        );
        assert!(
            s.query("request.object.spec.containers[?image=='x'].image")
                .is_ok()
        );
    }

    #[test]
    fn substitutes_like_kyverno() {
        let s = scope();
        assert_eq!(
            s.substitute_str("{{ request.namespace }}").unwrap(),
            json!("prod")
        );
        assert_eq!(
            s.substitute_str("ns-{{request.namespace}}/x").unwrap(),
            json!("ns-prod/x")
        );
        assert_eq!(
            s.substitute_str("{{ length(request.object.spec.containers) }}")
                .unwrap(),
            json!(1)
        );
        assert_eq!(s.substitute_str("plain").unwrap(), json!("plain"));
        assert_eq!(
            s.substitute_str("\\{{ not a var }}").unwrap(),
            json!("{{ not a var }}")
        );
        let e = s
            .substitute_str("{{ keys.data.{{request.namespace}} }}")
            .unwrap_err();
        assert!(e.contains("ConfigMap"), "{e}");
    }

    #[test]
    fn kyverno_functions() {
        let s = scope();
        assert_eq!(
            s.query("to_upper(request.namespace)").unwrap(),
            json!("PROD")
        );
        assert_eq!(
            s.query("split('a/b/c', '/')").unwrap(),
            json!(["a", "b", "c"])
        );
        assert_eq!(
            s.query("regex_match('^pr', request.namespace)").unwrap(),
            json!(true)
        );
        assert_eq!(
            s.query("pattern_match('p*d', request.namespace)").unwrap(),
            json!(true)
        );
        assert!(s.query("time_now_utc()").is_err());
    }

    #[test]
    fn elements_read_through_their_list() {
        let mut s = scope();
        s.set_element(
            "element",
            json!({"name": "app", "image": "x"}),
            "request.object.spec.containers",
        );
        assert_eq!(s.query("element.image").unwrap(), json!("x"));
        assert!(s.query("element.securityContext.privileged").is_err());
    }
}
