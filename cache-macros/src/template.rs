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
}
