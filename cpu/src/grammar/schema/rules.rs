//! Objects, arrays and strings shaped by a schema's keywords.

use super::builtin::{Builtin, lit};
use super::json::{Json, quoted};
use super::{Compiler, SchemaError, invalid, rule_name};
use crate::grammar::{GrammarError, RuleId, Term};

/// `open ws (item ("," ws item){min-1,max-1})? close ws`: an array's items or an object's
/// members.
pub(super) fn members(
    c: &mut Compiler,
    name: &str,
    (open, close): (&str, &str),
    item: &[Term],
    min: usize,
    max: Option<usize>,
) -> Result<RuleId, GrammarError> {
    let ws = Term::Rule(c.ws);
    let mut seq = vec![lit(open), ws.clone()];
    if max != Some(0) {
        let mut more = vec![lit(","), ws.clone()];
        more.extend_from_slice(item);
        let rest = c.b.repeat(
            &format!("{name}-more"),
            &more,
            min.saturating_sub(1),
            max.map(|m| m - 1),
        )?;
        let mut some = item.to_vec();
        some.push(Term::Rule(rest));
        if min == 0 {
            let optional = c.b.rule(&format!("{name}-items"), vec![some, vec![]])?;
            seq.push(Term::Rule(optional));
        } else {
            seq.extend(some);
        }
    }
    seq.extend([lit(close), ws]);
    c.b.rule(name, vec![seq])
}

/// A non-negative integer keyword (`minItems`, `maxLength`, ...), if present.
fn count(schema: &Json, keyword: &str, path: &str) -> Result<Option<usize>, SchemaError> {
    match schema.get(keyword) {
        None => Ok(None),
        Some(Json::Number(n)) => match n.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) => Ok(Some(n)),
            None => Err(invalid(keyword, path, "a non-negative integer")),
        },
        Some(_) => Err(invalid(keyword, path, "a non-negative integer")),
    }
}

/// `min`/`max` keyword pair, checked to leave some count possible.
fn bounds(
    schema: &Json,
    keywords: (&str, &str),
    path: &str,
) -> Result<(usize, Option<usize>), SchemaError> {
    let min = count(schema, keywords.0, path)?.unwrap_or(0);
    let max = count(schema, keywords.1, path)?;
    if max.is_some_and(|max| max < min) {
        return Err(SchemaError::Unsatisfiable {
            path: path.to_string(),
        });
    }
    Ok((min, max))
}

/// A string, with `minLength`/`maxLength` counted in characters (an escape is one).
pub(super) fn string(c: &mut Compiler, schema: &Json, path: &str) -> Result<RuleId, SchemaError> {
    if schema.get("minLength").is_none() && schema.get("maxLength").is_none() {
        return c.builtin(Builtin::String);
    }
    let (min, max) = bounds(schema, ("minLength", "maxLength"), path)?;
    let char = Term::Rule(c.builtin(Builtin::Char)?);
    let name = rule_name(path);
    let chars = c.b.repeat(&format!("{name}-chars"), &[char], min, max)?;
    Ok(c.b.rule(
        &name,
        vec![vec![
            lit("\""),
            Term::Rule(chars),
            lit("\""),
            Term::Rule(c.ws),
        ]],
    )?)
}

/// An array of `items` (any values when absent), `minItems` to `maxItems` of them.
pub(super) fn array(c: &mut Compiler, schema: &Json, path: &str) -> Result<RuleId, SchemaError> {
    let item = match schema.get("items") {
        None => c.builtin(Builtin::Value)?,
        Some(Json::Array(_)) => {
            return Err(SchemaError::Unsupported {
                keyword: "items (as an array of schemas)".into(),
                path: path.to_string(),
            });
        }
        Some(items) => c.compile(items, &format!("{path}/items"))?,
    };
    let (min, max) = bounds(schema, ("minItems", "maxItems"), path)?;
    if schema.get("items").is_none() && min == 0 && max.is_none() {
        return c.builtin(Builtin::AnyArray);
    }
    Ok(members(
        c,
        &rule_name(path),
        ("[", "]"),
        &[Term::Rule(item)],
        min,
        max,
    )?)
}

/// An object. With `properties`, exactly those (in their order; the `required` ones always, the
/// others optionally) unless `additionalProperties` says otherwise, which is refused; without,
/// any members whose values match `additionalProperties` (any value when absent or `true`).
pub(super) fn object(c: &mut Compiler, schema: &Json, path: &str) -> Result<RuleId, SchemaError> {
    let required: Vec<&str> = match schema.get("required") {
        None => Vec::new(),
        Some(Json::Array(names)) => names
            .iter()
            .map(|n| match n {
                Json::String(s) => Ok(s.as_str()),
                _ => Err(invalid("required", path, "an array of property names")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("required", path, "an array of property names")),
    };
    let properties = match schema.get("properties") {
        None => None,
        Some(Json::Object(pairs)) => Some(pairs.as_slice()),
        Some(_) => return Err(invalid("properties", path, "an object of schemas")),
    };
    let additional = schema.get("additionalProperties");
    let closed = matches!(additional, Some(Json::Bool(false)));
    let declared = |name: &str| properties.is_some_and(|p| p.iter().any(|(k, _)| k == name));
    if let Some(missing) = required.iter().find(|name| !declared(name)) {
        return Err(SchemaError::Invalid {
            keyword: format!("required ({missing:?})"),
            path: path.to_string(),
            reason: "only properties declared in \"properties\" can be required",
        });
    }
    match (properties, additional) {
        (Some(properties), None) => closed_object(c, properties, &required, path),
        (Some(_), Some(_)) | (None, Some(_)) if closed => {
            closed_object(c, properties.unwrap_or(&[]), &required, path)
        }
        (Some(_), Some(_)) => Err(SchemaError::Combination {
            keywords: "\"properties\" and \"additionalProperties\" other than false".into(),
            path: path.to_string(),
        }),
        (None, None) | (None, Some(Json::Bool(true))) => c.builtin(Builtin::AnyObject),
        (None, Some(values)) => {
            let value = c.compile(values, &format!("{path}/additionalProperties"))?;
            let member = [
                Term::Rule(c.builtin(Builtin::String)?),
                lit(":"),
                Term::Rule(c.ws),
                Term::Rule(value),
            ];
            Ok(members(c, &rule_name(path), ("{", "}"), &member, 0, None)?)
        }
    }
}

/// `{ws A0 }ws`: `A_i` is the members from property `i` on when none came before, `B_i` when
/// some did (so each is preceded by a comma); optional properties may be skipped.
fn closed_object(
    c: &mut Compiler,
    properties: &[(String, Json)],
    required: &[&str],
    path: &str,
) -> Result<RuleId, SchemaError> {
    let name = rule_name(path);
    let ws = Term::Rule(c.ws);
    let mut first = c.b.rule(&format!("{name}-end"), vec![vec![]])?;
    let mut later = first;
    for (key, schema) in properties.iter().rev() {
        let escaped = key.replace('~', "~0").replace('/', "~1");
        let value = c.compile(schema, &format!("{path}/properties/{escaped}"))?;
        let member = vec![
            lit(&quoted(key)),
            ws.clone(),
            lit(":"),
            ws.clone(),
            Term::Rule(value),
        ];
        let mut here = member.clone();
        here.push(Term::Rule(later));
        let mut after = vec![lit(","), ws.clone()];
        after.extend(member);
        after.push(Term::Rule(later));
        let (mut first_alts, mut later_alts) = (vec![here], vec![after]);
        if !required.contains(&key.as_str()) {
            first_alts.push(vec![Term::Rule(first)]);
            later_alts.push(vec![Term::Rule(later)]);
        }
        first = c.b.rule(&format!("{name}-first"), first_alts)?;
        later = c.b.rule(&format!("{name}-later"), later_alts)?;
    }
    Ok(c.b.rule(
        &name,
        vec![vec![lit("{"), ws.clone(), Term::Rule(first), lit("}"), ws]],
    )?)
}
