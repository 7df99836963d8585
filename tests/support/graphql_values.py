"""Values of a GraphQL type for documents sent in tests: what a field's guard or cost does not
depend on (a string for an ID, the first value of an enum, an input object's required fields)."""

from __future__ import annotations

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLSchema,
    ListTypeNode,
    NamedTypeNode,
    NonNullTypeNode,
    TypeNode,
    Undefined,
    build_schema,
    is_non_null_type,
    parse_type,
)

from adx.settings import REPO_ROOT


def public_schema() -> GraphQLSchema:
    return build_schema((REPO_ROOT / "schema" / "public.graphql").read_text())


def example(type_node: TypeNode, schema: GraphQLSchema) -> object:
    """A value of the type (one a guard or a cost does not depend on)."""
    if isinstance(type_node, NonNullTypeNode):
        return example(type_node.type, schema)
    if isinstance(type_node, ListTypeNode):
        return [example(type_node.type, schema)]
    assert isinstance(type_node, NamedTypeNode)
    named = schema.get_type(type_node.name.value)
    if isinstance(named, GraphQLEnumType):
        return next(iter(named.values))
    if isinstance(named, GraphQLInputObjectType):
        return {
            name: example(parse_type(str(field.type)), schema)
            for name, field in named.fields.items()
            if is_non_null_type(field.type) and field.default_value is Undefined
        }
    scalars: dict[str, object] = {"Int": 1, "Float": 1.0, "Boolean": False, "JSON": {}}
    return scalars.get(type_node.name.value, "x")
