"""One thin module per Lambda function."""
