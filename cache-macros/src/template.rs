//! `"user:{user_id}"` templates for keys and invalidation patterns.

use syn::LitStr;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece {
    Text(String),
    Arg(String),
}

/// A parsed template; `{name}` is an argument, `{{` and `}}` are literal braces.
#[derive(Clone)]
pub(crate) struct Template {
    pub lit: LitStr,
    pub pieces: Vec<Piece>,
}

impl Template {
    pub(crate) fn parse(lit: &LitStr) -> syn::Result<Self> {
        let s = lit.value();
        let err = |msg: String| syn::Error::new_spanned(lit, msg);
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c.is_alphanumeric() || c == '_' => name.push(c),
                            Some(c) => {
                                return Err(err(format!(
                                    "unexpected {c:?} in placeholder {{{name}..}}: placeholders name one argument, like {{user_id}}; write {{{{ for a literal brace"
                                )))
                            }
                            None => return Err(err(format!("unclosed placeholder {{{name}"))),
                        }
                    }
                    if name.is_empty() {
                        return Err(err(
                            "empty placeholder {}: name an argument, like {user_id}".into()
                        ));
                    }
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Arg(name));
                }
                '}' => return Err(err("unmatched '}': write }} for a literal brace".into())),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        if pieces.is_empty() {
            return Err(err("must not be empty".into()));
        }
        Ok(Template {
            lit: lit.clone(),
            pieces,
        })
    }

    pub(crate) fn args(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Arg(a) => Some(a.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// A key template must keep different arguments apart: every text between two placeholders
    /// holds a `:`. Argument text never contains one (it is escaped), so the key then splits back
    /// into its arguments in one way only; `"{a}{b}"` or `"{a}-{b}"` would give `("1", "23")` and
    /// `("12", "3")` one key.
    pub(crate) fn check_parts_separated(&self) -> syn::Result<()> {
        let mut after_arg: Option<&str> = None;
        for p in &self.pieces {
            match (p, after_arg) {
                (Piece::Arg(b), Some(a)) => {
                    return Err(syn::Error::new_spanned(
                        &self.lit,
                        format!(
                            "placeholders {{{a}}} and {{{b}}} must be separated by text containing ':', \
                             or two different argument lists could give the same key"
                        ),
                    ))
                }
                (Piece::Arg(a), None) => after_arg = Some(a),
                (Piece::Text(t), _) if t.contains(':') => after_arg = None,
                (Piece::Text(_), _) => {}
            }
        }
        Ok(())
    }

    /// Checks the literal parts of an invalidation pattern: a class left open or a dangling
    /// escape would be rejected by the engine at run time; say so at compile time instead.
    pub(crate) fn validate_glob(&self) -> syn::Result<()> {
        let mut in_class = false;
        for p in &self.pieces {
            let Piece::Text(t) = p else { continue };
            let mut chars = t.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' if chars.next().is_none() => {
                        return Err(syn::Error::new_spanned(
                            &self.lit,
                            "pattern ends with a dangling '\\'",
                        ))
                    }
                    '[' if !in_class => in_class = true,
                    ']' if in_class => in_class = false,
                    _ => {}
                }
            }
            if in_class {
                return Err(syn::Error::new_spanned(
                    &self.lit,
                    "unclosed character class '[' in pattern",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> syn::Result<Vec<Piece>> {
        Template::parse(&LitStr::new(s, proc_macro2::Span::call_site())).map(|t| t.pieces)
    }

    #[test]
    fn parses_placeholders_and_escapes() {
        assert_eq!(
            t("user:{id}:x{{y}}").unwrap(),
            vec![
                Piece::Text("user:".into()),
                Piece::Arg("id".into()),
                Piece::Text(":x{y}".into())
            ]
        );
        for bad in ["", "{", "{}", "a}", "{a b}", "{a"] {
            assert!(t(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_placeholders_need_a_colon_between_them() {
        let check = |s: &str| {
            Template::parse(&LitStr::new(s, proc_macro2::Span::call_site()))
                .unwrap()
                .check_parts_separated()
        };
        for ok in ["u:{a}:{b}", "{a}", "x{a}y", "{a}::{b}", "{a}-x:y-{b}:z", "p-{a}"] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for bad in ["{a}{b}", "u:{a}-{b}", "{a}:{b}x{c}", "{a} {b}"] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
