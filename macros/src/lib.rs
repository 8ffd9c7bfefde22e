//! `#[rankview::remote]`, the attribute that makes a function callable on
//! engines, and `#[rankview::test]`, the one that makes a function a test
//! run as an MPI job.
//!
//! `remote` leaves the function as it is and adds, beside it, an engine
//! trampoline (decode arguments, call, encode the result) and a registry entry
//! keyed by the function's full path. `test` turns a function of `&Client`
//! into a `#[test]` that hands it to `rankview::testing::run`. Everything the
//! generated code calls lives in `rankview::__private`; what the registry
//! does with the entries, and how a test's job runs, is left to the
//! `rankview` crate.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{AngleBracketedGenericArguments, FnArg, GenericParam, ItemFn, Token, Type};

/// Registers a function so that engines can run it with `view.apply(f, args)`.
///
/// Arguments and the result must be serde types. A parameter of type `&T` may
/// receive a `rankview::Ref<T>` naming a value already on the engine, which the
/// function then sees in place. Return `rankview::TaskResult<T>` to report
/// failure: an `Err` reaches the client as `Error::Remote`.
///
/// Generic functions are registered per instantiation, listed as
/// `#[rankview::remote(<f64>, <i32>)]` (one `<...>` per instantiation, with
/// one type per generic parameter).
#[proc_macro_attribute]
pub fn remote(attr: TokenStream, item: TokenStream) -> TokenStream {
    let instances = syn::parse_macro_input!(attr as Instances);
    let function = syn::parse_macro_input!(item as ItemFn);
    match expand(instances, function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// Makes a function of `&rankview::Client` a test that runs as its own MPI
/// job of `ranks` ranks under plain `cargo test` (and `cargo nextest run`).
/// Optional: `timeout = SECONDS` (default 120; `RANKVIEW_TEST_TIMEOUT`
/// overrides both). The function may return `()` or a `Result<(), E>` with
/// `E: Display`; other attributes (`#[ignore]`, doc comments) are kept.
///
/// ```ignore
/// #[rankview::test(ranks = 3)]
/// fn squares(rc: &rankview::Client) -> rankview::Result<()> {
///     assert_eq!(rc.all().apply_sync(square, (7u64,))?, vec![49, 49]);
///     Ok(())
/// }
/// ```
#[proc_macro_attribute]
pub fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    let options = syn::parse_macro_input!(attr as TestOptions);
    let function = syn::parse_macro_input!(item as ItemFn);
    match expand_test(options, function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// `ranks = N` and `timeout = SECONDS`.
struct TestOptions {
    ranks: Option<syn::LitInt>,
    timeout: Option<syn::LitInt>,
}

impl Parse for TestOptions {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut options = TestOptions {
            ranks: None,
            timeout: None,
        };
        let pairs = Punctuated::<syn::MetaNameValue, Token![,]>::parse_terminated(input)?;
        for pair in pairs {
            let value = match &pair.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Int(int),
                    ..
                }) => int.clone(),
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "expected a whole number, as in `ranks = 3`",
                    ))
                }
            };
            let slot = if pair.path.is_ident("ranks") {
                &mut options.ranks
            } else if pair.path.is_ident("timeout") {
                &mut options.timeout
            } else {
                return Err(syn::Error::new(
                    pair.path.span(),
                    "unknown option: #[rankview::test] takes `ranks = N` and `timeout = SECONDS`",
                ));
            };
            *slot = Some(value);
        }
        Ok(options)
    }
}

fn expand_test(options: TestOptions, function: ItemFn) -> syn::Result<Tokens> {
    let sig = &function.sig;
    let name = &sig.ident;
    let Some(ranks) = options.ranks else {
        return Err(syn::Error::new(
            name.span(),
            "say how many ranks the test's job has: #[rankview::test(ranks = 3)] (rank 0 runs \
             the test, the others are engines)",
        ));
    };
    if ranks.base10_parse::<usize>()? < 2 {
        return Err(syn::Error::new(
            ranks.span(),
            "a rankview job needs at least 2 ranks: rank 0 runs the test, the others are engines",
        ));
    }
    if let Some(asyncness) = &sig.asyncness {
        return Err(syn::Error::new(
            asyncness.span(),
            "a rankview test cannot be async: it runs on rank 0 as the client; await inside it \
             with a runtime of your own",
        ));
    }
    if sig.inputs.len() != 1 || !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.inputs.span(),
            "a rankview test takes one parameter, the client: `fn name(rc: &rankview::Client)`",
        ));
    }
    let timeout = match options.timeout {
        Some(t) => {
            let secs = t.base10_parse::<u64>()?;
            quote! { ::core::option::Option::Some(#secs) }
        }
        None => quote! { ::core::option::Option::None },
    };
    let attrs = &function.attrs;
    let vis = &function.vis;
    let inputs = &sig.inputs;
    let output = &sig.output;
    let block = &function.block;
    Ok(quote! {
        #[test]
        #(#attrs)*
        #vis fn #name() {
            fn __rankview_test_body(#inputs) #output #block
            ::rankview::__private::testing::run(
                ::rankview::__private::testing::TestJob {
                    path: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
                    ranks: #ranks,
                    timeout_secs: #timeout,
                },
                |rc| ::rankview::__private::testing::TestOutcome::into_outcome(
                    __rankview_test_body(rc),
                ),
            );
        }
    })
}

/// The attribute's arguments: a list of `<T, ...>` instantiations.
struct Instances(Vec<AngleBracketedGenericArguments>);

impl Parse for Instances {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let list =
            Punctuated::<AngleBracketedGenericArguments, Token![,]>::parse_terminated(input)?;
        Ok(Instances(list.into_iter().collect()))
    }
}

fn expand(instances: Instances, function: ItemFn) -> syn::Result<Tokens> {
    let sig = &function.sig;
    let name = &sig.ident;
    if let Some(asyncness) = &sig.asyncness {
        return Err(syn::Error::new(
            asyncness.span(),
            "remote functions cannot be async",
        ));
    }
    let type_params: Vec<_> = sig
        .generics
        .params
        .iter()
        .map(|p| match p {
            GenericParam::Type(t) => Ok(t.ident.clone()),
            GenericParam::Lifetime(l) => Err(syn::Error::new(
                l.span(),
                "remote functions take no lifetime parameters: use plain `&T` parameters",
            )),
            GenericParam::Const(c) => Err(syn::Error::new(
                c.span(),
                "remote functions take no const parameters",
            )),
        })
        .collect::<syn::Result<_>>()?;
    if type_params.is_empty() && !instances.0.is_empty() {
        return Err(syn::Error::new(
            sig.ident.span(),
            "instantiations are only for generic functions",
        ));
    }
    if !type_params.is_empty() && instances.0.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "generic remote functions are registered per instantiation: \
             write #[rankview::remote(<f64>, <i32>)] with the types to register",
        ));
    }
    check_return(&sig.output)?;

    let mut reads = Vec::new();
    let mut passes = Vec::new();
    for (i, input) in sig.inputs.iter().enumerate() {
        let ty = match input {
            FnArg::Receiver(r) => {
                return Err(syn::Error::new(
                    r.span(),
                    "remote functions must be free functions (no `self`)",
                ))
            }
            FnArg::Typed(pat) => &*pat.ty,
        };
        let var = format_ident!("__rankview_arg{}", i);
        match ty {
            Type::Reference(r) if r.mutability.is_some() => {
                return Err(syn::Error::new(
                    r.span(),
                    "`&mut` parameters are not supported: take `&T` or `T`, and use \
                     rankview::globals().get_mut to change engine values",
                ))
            }
            Type::Reference(r) => {
                let inner = owned_form(&r.elem);
                reads.push(quote! { let #var = __rankview_args.held::<#inner>()?; });
                passes.push(quote! { &*#var });
            }
            other => {
                reads.push(quote! { let #var = __rankview_args.owned::<#other>()?; });
                passes.push(quote! { #var });
            }
        }
    }

    let turbofish = if type_params.is_empty() {
        quote! {}
    } else {
        quote! { ::<#(#type_params),*> }
    };
    let signature = {
        let inputs = &sig.inputs;
        let output = &sig.output;
        quote!((#inputs) #output).to_string()
    };
    let name_str = name.to_string();
    let raw = raw_map(sig, name, &turbofish);
    let body = quote! {
        #raw
        #[allow(non_snake_case)]
        fn __rankview_invoke(
            __rankview_args: &mut ::rankview::__private::ArgReader,
        ) -> ::rankview::Result<::std::vec::Vec<u8>> {
            #(#reads)*
            ::rankview::__private::reply(#name #turbofish (#(#passes),*))
        }
    };

    // One block per instantiation: type aliases named like the generic
    // parameters make the parameter types concrete inside the block.
    let blocks: Vec<Tokens> = if instances.0.is_empty() {
        vec![block(
            &name_str,
            quote! {},
            quote! {},
            &body,
            &signature,
            name,
        )]
    } else {
        instances
            .0
            .iter()
            .map(|args| {
                if args.args.len() != type_params.len() {
                    return Err(syn::Error::new(
                        args.span(),
                        format!(
                            "this instantiation gives {} types; the function has {} type parameters",
                            args.args.len(),
                            type_params.len()
                        ),
                    ));
                }
                let aliases = type_params.iter().zip(args.args.iter()).map(|(param, arg)| {
                    quote! { #[allow(non_camel_case_types, dead_code)] type #param = #arg; }
                });
                let list = &args.args;
                Ok(block(
                    &name_str,
                    quote! { #(#aliases)* },
                    quote! { ::<#list> },
                    &body,
                    &signature,
                    name,
                ))
            })
            .collect::<syn::Result<_>>()?
    };

    Ok(quote! {
        #function
        #(#blocks)*
    })
}

/// The trampoline and registry entry for `name` with the turbofish `inst`
/// (empty if not generic), under the type `aliases` of that instantiation.
fn block(
    name_str: &str,
    aliases: Tokens,
    inst: Tokens,
    body: &Tokens,
    signature: &str,
    name: &syn::Ident,
) -> Tokens {
    let inst_str = inst.to_string().replace(' ', "");
    quote! {
        const _: () = {
            #aliases
            #body
            ::rankview::__private::inventory::submit! {
                ::rankview::__private::RemoteEntry {
                    path: ::core::concat!(::core::module_path!(), "::", #name_str, #inst_str),
                    signature: #signature,
                    type_id: || ::rankview::__private::type_id_of(&#name #inst),
                    invoke: __rankview_invoke,
                    raw_kinds: __rankview_raw_kinds,
                    map_raw: __rankview_map_raw,
                }
            }
        };
    }
}

/// `__rankview_raw_kinds` and `__rankview_map_raw`, the raw `map` of a
/// function of one owned parameter `P` returning `R`: inside an
/// instantiation's block both types are concrete, so the probe
/// (`rankview::__private::Probe`) picks the monomorphized loop when both are
/// plain numbers and `None` otherwise. Other functions (several parameters,
/// a `&T` parameter, no return value) get the `None` of `no_raw_kinds` and
/// `no_map_raw` without a probe.
fn raw_map(sig: &syn::Signature, name: &syn::Ident, turbofish: &Tokens) -> Tokens {
    let param = match sig.inputs.first() {
        Some(FnArg::Typed(pat)) if sig.inputs.len() == 1 => match &*pat.ty {
            Type::Reference(_) | Type::ImplTrait(_) => None,
            ty => Some(ty),
        },
        _ => None,
    };
    let result = match &sig.output {
        syn::ReturnType::Type(_, ty) if !matches!(&**ty, Type::ImplTrait(_)) => Some(&**ty),
        _ => None,
    };
    let private = quote! { ::rankview::__private };
    let kinds = quote! {
        ::core::option::Option<(#private::ElemKind, #private::ElemKind)>
    };
    let (Some(param), Some(result)) = (param, result) else {
        return quote! {
            #[allow(non_snake_case)]
            fn __rankview_raw_kinds() -> #kinds {
                #private::no_raw_kinds()
            }
            #[allow(non_snake_case)]
            fn __rankview_map_raw(
                __rankview_items: &[u8],
                __rankview_out: &mut ::std::vec::Vec<u8>,
            ) -> ::core::option::Option<::rankview::Result<()>> {
                #private::no_map_raw(__rankview_items, __rankview_out)
            }
        };
    };
    quote! {
        #[allow(non_snake_case, unused_imports, clippy::needless_borrow)]
        fn __rankview_raw_kinds() -> #kinds {
            use #private::{NotRawMap as _, RawMap as _};
            (&#private::Probe::<#param, #result>::new()).raw_kinds()
        }
        #[allow(non_snake_case, unused_imports, clippy::needless_borrow)]
        fn __rankview_map_raw(
            __rankview_items: &[u8],
            __rankview_out: &mut ::std::vec::Vec<u8>,
        ) -> ::core::option::Option<::rankview::Result<()>> {
            use #private::{NotRawMap as _, RawMap as _};
            (&#private::Probe::<#param, #result>::new()).map_raw(
                #name #turbofish,
                __rankview_items,
                __rankview_out,
            )
        }
    }
}

/// The owned type decoded for a `&T` parameter: `str` → `String`,
/// `[T]` → `Vec<T>`, otherwise `T`.
fn owned_form(elem: &Type) -> Tokens {
    match elem {
        Type::Path(p) if p.qself.is_none() && p.path.is_ident("str") => {
            quote! { ::std::string::String }
        }
        Type::Slice(s) => {
            let inner = &s.elem;
            quote! { ::std::vec::Vec<#inner> }
        }
        other => quote! { #other },
    }
}

/// Refuses `Result<T, E>` returns with another error type than `TaskError`:
/// they would travel as values, and their `Err` would not become a remote error.
fn check_return(output: &syn::ReturnType) -> syn::Result<()> {
    let syn::ReturnType::Type(_, ty) = output else {
        return Ok(());
    };
    let Type::Path(path) = &**ty else {
        return Ok(());
    };
    let Some(last) = path.path.segments.last() else {
        return Ok(());
    };
    if last.ident != "Result" {
        return Ok(());
    }
    let error_is_task_error = match &last.arguments {
        syn::PathArguments::AngleBracketed(args) if args.args.len() == 2 => matches!(
            args.args.iter().nth(1),
            Some(syn::GenericArgument::Type(Type::Path(e)))
                if e.path.segments.last().is_some_and(|s| s.ident == "TaskError")
        ),
        _ => false,
    };
    if error_is_task_error {
        Ok(())
    } else {
        Err(syn::Error::new(
            ty.span(),
            "remote functions report failure with rankview::TaskResult<T> \
             (any std::error::Error converts into it with `?`)",
        ))
    }
}
