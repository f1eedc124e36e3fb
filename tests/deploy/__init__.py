"""Deployment: template.yaml and the artefacts `sam build` makes from it."""
