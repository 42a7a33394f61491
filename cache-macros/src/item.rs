//! The function an attribute is written on, parsed as `tracing-attributes`' `MaybeItemFn`: the
//! attributes, visibility and signature typed, the body kept as the tokens the user wrote.
//!
//! The body is never parsed by the macro, so code `syn` cannot parse, or code not finished yet,
//! still reaches rustc, which reports its errors at their own tokens; and the expansion moves
//! the tokens as they are, with their spans.

use proc_macro2::{Delimiter, Group, TokenStream};
use quote::{ToTokens, TokenStreamExt};
use syn::parse::{Parse, ParseStream};
use syn::token::Brace;
use syn::{Attribute, Signature, Visibility};

#[derive(Clone)]
pub(crate) struct MaybeItemFn {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub sig: Signature,
    /// `#![..]` at the top of the body: they apply to the whole function, so the expansion puts
    /// them at the top of the body it writes.
    pub inner_attrs: Vec<Attribute>,
    pub brace_token: Brace,
    /// The body's statements, unparsed.
    pub body: TokenStream,
}

impl Parse for MaybeItemFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        let content;
        let brace_token = syn::braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let body: TokenStream = content.parse()?;
        Ok(MaybeItemFn {
            attrs,
            vis,
            sig,
            inner_attrs,
            brace_token,
            body,
        })
    }
}

impl MaybeItemFn {
    /// The user's body as one block expression `{ .. }`, its braces spanning the original ones,
    /// so that an error about the block as a whole (say, one without a tail expression) points
    /// at the user's braces.
    pub(crate) fn body_block(&self) -> Group {
        let mut g = Group::new(Delimiter::Brace, self.body.clone());
        g.set_span(self.brace_token.span.join());
        g
    }

    /// The function with `body` in place of its own: the same attributes, visibility and
    /// signature, the inner attributes first.
    pub(crate) fn with_body(&self, body: TokenStream) -> TokenStream {
        let mut out = TokenStream::new();
        out.append_all(&self.attrs);
        self.vis.to_tokens(&mut out);
        self.sig.to_tokens(&mut out);
        self.brace_token.surround(&mut out, |out| {
            out.append_all(&self.inner_attrs);
            out.extend(body);
        });
        out
    }
}

/// The function as it was written (after any attributes the caller removed).
impl ToTokens for MaybeItemFn {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        tokens.extend(self.with_body(self.body.clone()));
    }
}
