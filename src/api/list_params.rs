//! The query parameters of the three order lists, described once for the
//! OpenAPI document.
//!
//! The lists parse their query string themselves
//! ([`ListFilter::from_query`](crate::domain::ListFilter::from_query)), so
//! the parameters exist in the document only. poem-openapi 5 has no way to
//! declare a group of parameters once and use it in several operations (an
//! extractor describes one parameter), so instead of repeating ten
//! documentation-only arguments in each list operation,
//! [`WithListParameters`] adds them to the operations' descriptions after
//! poem-openapi has built them. Which list takes which parameters is the
//! domain's rule ([`ListScope::takes`]).

use std::collections::HashMap;

use poem::http::Method;
use poem_openapi::registry::{
    MetaApi, MetaOperationParam, MetaParamIn, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::OpenApi;

use super::schema::{
    AmountParam, CursorParam, LimitParam, ParamSchema, SkipParam, SortParam, StatusParam,
    TextParam, TimeBoundParam,
};
use crate::domain::filter::LIST_PARAMETERS;
use crate::domain::ListScope;

/// The list operations, by the `operation_id` their `#[oai]` gives them.
const LIST_OPERATIONS: [(&str, ListScope); 3] = [
    ("list_orders", ListScope::All),
    ("list_customer_orders", ListScope::Customer),
    ("list_status_orders", ListScope::Status),
];

/// A parameter's description and schema.
fn describe(name: &str) -> (&'static str, MetaSchema) {
    match name {
        "status" => ("Only orders in this status.", StatusParam::schema()),
        "customer_id" => (
            "Only this customer's orders (exact match).",
            TextParam::schema(),
        ),
        "min_amount" => ("Smallest `total_amount`, inclusive.", AmountParam::schema()),
        "max_amount" => ("Largest `total_amount`, inclusive.", AmountParam::schema()),
        "created_from" => (
            "Earliest `created_at`, inclusive; a date means from its first microsecond (UTC).",
            TimeBoundParam::schema(),
        ),
        "created_to" => (
            "Latest `created_at`, inclusive; a date means to its last microsecond (UTC).",
            TimeBoundParam::schema(),
        ),
        "sort" => (
            "Sort key; a leading `-` means descending.",
            SortParam::schema(),
        ),
        "cursor" => (
            "The `cursor` of the previous page's `Link: rel=\"next\"` (keyset pagination; send the same `sort`).",
            CursorParam::schema(),
        ),
        "skip" => (
            "Orders to skip, at most 10,000 unless configured otherwise (`server.max_skip`; 422 beyond): deeper pages follow the `Link` header's `cursor`, which costs the same at any depth.",
            SkipParam::schema(),
        ),
        "limit" => ("Most orders to return, 1–1000.", LimitParam::schema()),
        other => unreachable!("{other} is not a list parameter"),
    }
}

/// The optional query parameters a list takes, in the document's order.
fn parameters(scope: ListScope) -> impl Iterator<Item = MetaOperationParam> {
    LIST_PARAMETERS
        .into_iter()
        .filter(move |name| scope.takes(name))
        .map(|name| {
            let (description, schema) = describe(name);
            MetaOperationParam {
                name: name.to_string(),
                schema: MetaSchemaRef::Inline(Box::new(schema)),
                in_type: MetaParamIn::Query,
                description: Some(description.to_string()),
                required: false,
                deprecated: false,
                explode: true,
                style: None,
            }
        })
}

/// An API whose list operations get the list query parameters in its
/// OpenAPI description; routing is the inner API's.
pub struct WithListParameters<T>(pub T);

impl<T: OpenApi> OpenApi for WithListParameters<T> {
    fn meta() -> Vec<MetaApi> {
        let mut apis = T::meta();
        let operations = apis
            .iter_mut()
            .flat_map(|api| api.paths.iter_mut())
            .flat_map(|path| path.operations.iter_mut());
        for operation in operations {
            let scope = LIST_OPERATIONS
                .iter()
                .find(|(id, _)| operation.operation_id == Some(*id))
                .map(|(_, scope)| *scope);
            if let Some(scope) = scope {
                operation.params.extend(parameters(scope));
            }
        }
        apis
    }

    fn register(registry: &mut Registry) {
        // The parameters' schemas are inline: nothing more to register.
        T::register(registry);
    }

    fn add_routes(
        self,
        route_table: &mut HashMap<String, HashMap<Method, poem::endpoint::BoxEndpoint<'static>>>,
    ) {
        self.0.add_routes(route_table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_parameter_is_described() {
        for name in LIST_PARAMETERS {
            let (description, _) = describe(name);
            assert!(!description.is_empty(), "{name}");
        }
    }

    #[test]
    fn a_list_does_not_take_its_path_parameter_from_the_query() {
        let names = |scope| parameters(scope).map(|p| p.name).collect::<Vec<_>>();
        assert_eq!(names(ListScope::All).len(), 10);
        assert!(!names(ListScope::Customer).contains(&"customer_id".to_string()));
        assert!(!names(ListScope::Status).contains(&"status".to_string()));
        assert_eq!(names(ListScope::Status).len(), 9);
    }
}
