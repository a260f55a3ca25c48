package main

import "context"

func secBacklog(ctx context.Context, e *env, r *report) error   { r.printf("\nNot measured yet.\n"); return nil }
func secCountdown(ctx context.Context, e *env, r *report) error { r.printf("\nNot measured yet.\n"); return nil }
func secQueues(ctx context.Context, e *env, r *report) error    { r.printf("\nNot measured yet.\n"); return nil }
func secPayload(ctx context.Context, e *env, r *report) error   { r.printf("\nNot measured yet.\n"); return nil }
func secResult(ctx context.Context, e *env, r *report) error    { r.printf("\nNot measured yet.\n"); return nil }
func secHA(ctx context.Context, e *env, r *report) error        { r.printf("\nNot measured yet.\n"); return nil }
