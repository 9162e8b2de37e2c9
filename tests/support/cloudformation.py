"""A deployed stack as the tests imagine it: template.yaml's parameters, conditions and intrinsic functions
(Ref, Fn::Sub, Fn::GetAtt, Fn::If, Fn::Select, Fn::Split, Fn::Join, Fn::FindInMap, conditions) resolved for
one account, region and set of parameter values, with physical names CloudFormation would choose."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.templates import load_template

NO_VALUE = object()  # AWS::NoValue: the property or list item is left out


class Unresolvable(ValueError):
    """An intrinsic function or attribute this resolver does not know."""


@dataclass
class Stack:
    template: dict[str, Any]
    parameters: dict[str, str] = field(default_factory=dict)
    account: str = "210987654321"
    region: str = "eu-central-1"
    partition: str = "aws"
    name: str = "grantwatch"
    uuid: str = "0f8c5e10-9a7b-11ef-8c3e-0a1b2c3d4e5f"

    @classmethod
    def load(cls, path: Path, **kwargs: Any) -> Stack:
        return cls(load_template(path), **kwargs)

    @property
    def stack_id(self) -> str:
        return (
            f"arn:{self.partition}:cloudformation:{self.region}:{self.account}:stack/{self.name}/{self.uuid}"
        )

    @property
    def resources(self) -> dict[str, Any]:
        resources: dict[str, Any] = self.template["Resources"]
        return resources

    def parameter(self, name: str) -> str:
        if name in self.parameters:
            return self.parameters[name]
        declared = self.template.get("Parameters", {}).get(name)
        if declared is None or "Default" not in declared:
            raise Unresolvable(f"parameter {name} has no value and no default")
        return str(declared["Default"])

    def condition(self, name: str) -> bool:
        return bool(self._truth(self.template["Conditions"][name]))

    def exists(self, logical_id: str) -> bool:
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def _truth(self, value: Any) -> bool:
        ((function, argument),) = value.items()
        match function:
            case "Condition" | "Fn::Condition":  # the short form !Condition reads as Fn::Condition
                return self.condition(argument)
            case "Fn::Equals":
                left, right = (self.resolve(a) for a in argument)
                return str(left) == str(right)
            case "Fn::Not":
                return not self._truth(argument[0])
            case "Fn::And":
                return all(self._truth(a) for a in argument)
            case "Fn::Or":
                return any(self._truth(a) for a in argument)
        raise Unresolvable(f"condition function {function}")

    def resolve(self, value: Any) -> Any:
        """The value with every intrinsic function resolved; AWS::NoValue items left out."""
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                return self._function(key, argument)
        return {k: r for k, r in ((k, self.resolve(v)) for k, v in value.items()) if r is not NO_VALUE}

    def _function(self, name: str, argument: Any) -> Any:
        match name:
            case "Ref":
                return self.ref(argument)
            case "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.attribute(logical_id, attribute)
            case "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                return self._sub(text, {k: self.resolve(v) for k, v in variables.items()})
            case "Fn::If":
                condition, when_true, when_false = argument
                return self.resolve(when_true if self.condition(condition) else when_false)
            case "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(self.resolve(index))]
            case "Fn::Split":
                separator, text = argument
                return str(self.resolve(text)).split(separator)
            case "Fn::Join":
                separator, items = argument
                return separator.join(str(i) for i in self.resolve(items))
            case "Fn::FindInMap":
                mapping, top, second = (str(self.resolve(a)) for a in argument)
                return self.template["Mappings"][mapping][top][second]
            case "Condition":
                return self.condition(argument)
        raise Unresolvable(f"intrinsic function {name}")

    def _sub(self, text: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return str(self.attribute(logical_id, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::AccountId": self.account,
            "AWS::Region": self.region,
            "AWS::Partition": self.partition,
            "AWS::StackName": self.name,
            "AWS::StackId": self.stack_id,
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.template.get("Parameters", {}):
            return self.parameter(name)
        if name in self.resources:
            return self._physical_ref(name)
        raise Unresolvable(f"Ref {name}")

    def physical_name(self, logical_id: str) -> str:
        """The name CloudFormation gives a resource the template does not name: stack-LogicalId-SUFFIX."""
        return f"{self.name}-{logical_id}-TESTSUFFIX"

    def _physical_ref(self, logical_id: str) -> str:
        kind = self.resources[logical_id]["Type"]
        name = self.physical_name(logical_id)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{name}"
        if kind == "AWS::SNS::Topic":
            return f"arn:{self.partition}:sns:{self.region}:{self.account}:{name}"
        if kind == "AWS::IAM::ManagedPolicy":
            return f"arn:{self.partition}:iam::{self.account}:policy/{name}"
        return name

    def attribute(self, logical_id: str, attribute: str) -> str:
        kind = self.resources[logical_id]["Type"]
        name = self.physical_name(logical_id)
        where = f"{self.region}:{self.account}"
        arns = {
            "AWS::DynamoDB::Table": f"arn:{self.partition}:dynamodb:{where}:table/{name}",
            "AWS::SQS::Queue": f"arn:{self.partition}:sqs:{where}:{name}",
            "AWS::Serverless::Function": f"arn:{self.partition}:lambda:{where}:function:{name}",
            "AWS::Events::Rule": f"arn:{self.partition}:events:{where}:rule/{name}",
            "AWS::IAM::Role": f"arn:{self.partition}:iam::{self.account}:role/{name}",
            "AWS::KMS::Key": f"arn:{self.partition}:kms:{where}:key/{name}",
            "AWS::Lambda::Function": f"arn:{self.partition}:lambda:{where}:function:{name}",
            "AWS::Events::ApiDestination": f"arn:{self.partition}:events:{where}:api-destination/{name}/id",
            "AWS::Events::Connection": f"arn:{self.partition}:events:{where}:connection/{name}/id",
        }
        if attribute == "Arn" and kind in arns:
            return arns[kind]
        if attribute == "QueueName" and kind == "AWS::SQS::Queue":
            return name
        raise Unresolvable(f"{logical_id}.{attribute} ({kind})")
